"""Train PPO on CartPole-v1, evaluate it, save it, load it back and act with it.

python examples/train_cartpole.py
"""

from __future__ import annotations

import gymnasium as gym

from scoregrad import rl

agent = rl.train("CartPole-v1", algo="ppo", total_steps=100_000, seed=0, out="runs/cartpole")
mean_return, std_return = rl.evaluate(agent, "CartPole-v1", episodes=20, seed=1000)
print(f"PPO on CartPole-v1: {mean_return:.1f} +- {std_return:.1f} over 20 deterministic episodes")

agent.save("runs/cartpole")  # safetensors + JSON, resumable with `scoregrad train ... --resume`
agent = rl.load("runs/cartpole")

env = gym.make("CartPole-v1")
observation, _ = env.reset(seed=0)
total, done = 0.0, False
while not done:
    observation, reward, terminated, truncated, _ = env.step(agent.act(observation, deterministic=True))
    total += reward
    done = terminated or truncated
print(f"one more episode with the loaded agent: {total:.0f}")
