"""Returns and advantages against plain Python reference loops (per env, step by step)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scoregrad.rl import returns

GAMMA, LAM = 0.9, 0.8


@st.composite
def rollouts(draw):
    T = draw(st.integers(1, 12))
    N = draw(st.integers(1, 3))
    floats = st.floats(-5, 5, allow_nan=False, width=32)
    r = np.array(draw(st.lists(floats, min_size=T * N, max_size=T * N)), np.float32).reshape(T, N)
    v = np.array(draw(st.lists(floats, min_size=T * N, max_size=T * N)), np.float32).reshape(T, N)
    nv = np.array(draw(st.lists(floats, min_size=T * N, max_size=T * N)), np.float32).reshape(T, N)
    event = np.array(
        draw(st.lists(st.sampled_from([0, 0, 0, 1, 2]), min_size=T * N, max_size=T * N))
    ).reshape(T, N)
    term, trunc = event == 1, event == 2
    valid = returns.autoreset_valid_mask(torch.zeros(N, dtype=torch.bool), torch.from_numpy(term | trunc))
    return r, v, nv, term, trunc, valid.numpy()


def ref_reward_to_go(r, term, trunc, nv, valid, gamma):
    T, N = r.shape
    out = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            if not valid[t, n]:
                continue
            g, k = 0.0, t
            while True:
                g += gamma ** (k - t) * r[k, n]
                if term[k, n]:
                    break
                if trunc[k, n] or k == T - 1:
                    g += gamma ** (k - t + 1) * (0.0 if nv is None else nv[k, n])
                    break
                k += 1
            out[t, n] = g
    return out


def ref_n_step(r, term, trunc, nv, valid, gamma, n_steps):
    T, N = r.shape
    out = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            if not valid[t, n]:
                continue
            g = 0.0
            for k in range(t, T):
                g += gamma ** (k - t) * r[k, n]
                if term[k, n]:
                    break
                if trunc[k, n] or k == T - 1 or k - t + 1 == n_steps:
                    g += gamma ** (k - t + 1) * nv[k, n]
                    break
            out[t, n] = g
    return out


def ref_gae(r, v, nv, term, trunc, valid, gamma, lam):
    T, N = r.shape
    adv = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            if not valid[t, n]:
                continue
            a, k = 0.0, t
            while True:
                delta = r[k, n] + gamma * (0.0 if term[k, n] else nv[k, n]) - v[k, n]
                a += (gamma * lam) ** (k - t) * delta
                if term[k, n] or trunc[k, n] or k == T - 1:
                    break
                k += 1
            adv[t, n] = a
    return adv


def _t(*arrays):
    return [torch.as_tensor(a) for a in arrays]


@settings(max_examples=60, deadline=None)
@given(rollouts(), st.booleans())
def test_reward_to_go_matches_reference_loop(data, bootstrap):
    r, v, nv, term, trunc, valid = data
    nv_arg = nv if bootstrap else None
    got = returns.reward_to_go(
        *_t(r, term, trunc), GAMMA, None if nv_arg is None else torch.as_tensor(nv), torch.as_tensor(valid)
    )
    np.testing.assert_allclose(
        got.numpy(), ref_reward_to_go(r, term, trunc, nv_arg, valid, GAMMA), rtol=1e-4, atol=1e-4
    )


@settings(max_examples=60, deadline=None)
@given(rollouts())
def test_episode_return_is_reward_to_go_of_the_segment_start(data):
    r, v, nv, term, trunc, valid = data
    got = returns.discounted_episode_return(*_t(r, term, trunc), GAMMA, None, torch.as_tensor(valid)).numpy()
    rtg = ref_reward_to_go(r, term, trunc, None, valid, GAMMA)
    T, N = r.shape
    for n in range(N):
        start = 0
        for t in range(T):
            if not valid[t, n]:
                assert got[t, n] == 0
                start = t + 1
                continue
            assert got[t, n] == pytest.approx(rtg[start, n], abs=1e-4)
            if term[t, n] or trunc[t, n]:
                start = t + 1


@settings(max_examples=60, deadline=None)
@given(rollouts(), st.integers(1, 5))
def test_n_step_returns_match_reference_loop(data, n_steps):
    r, v, nv, term, trunc, valid = data
    got = returns.n_step_returns(*_t(r, term, trunc, nv), GAMMA, n_steps, torch.as_tensor(valid))
    np.testing.assert_allclose(
        got.numpy(), ref_n_step(r, term, trunc, nv, valid, GAMMA, n_steps), rtol=1e-4, atol=1e-4
    )


@settings(max_examples=60, deadline=None)
@given(rollouts())
def test_gae_matches_reference_loop_and_returns_are_adv_plus_value(data):
    r, v, nv, term, trunc, valid = data
    adv, ret = returns.gae(*_t(r, v, nv, term, trunc), GAMMA, LAM, torch.as_tensor(valid))
    np.testing.assert_allclose(
        adv.numpy(), ref_gae(r, v, nv, term, trunc, valid, GAMMA, LAM), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(ret.numpy(), (adv.numpy() + v) * valid, rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(rollouts())
def test_gae_with_lambda_one_is_reward_to_go_minus_value(data):
    r, v, nv, term, trunc, valid = data
    # consistent values: V(s_{t+1}) is the next step's V(s) unless the episode ended at t
    nv = nv.copy()
    nv[:-1] = np.where((term | trunc)[:-1], nv[:-1], v[1:])
    adv, _ = returns.gae(*_t(r, v, nv, term, trunc), 0.95, 1.0, torch.as_tensor(valid))
    rtg = returns.reward_to_go(*_t(r, term, trunc), 0.95, torch.as_tensor(nv), torch.as_tensor(valid))
    np.testing.assert_allclose(adv.numpy(), ((rtg.numpy() - v) * valid), rtol=1e-4, atol=1e-3)


def test_terminated_does_not_bootstrap_but_truncated_does():
    r = torch.tensor([[1.0], [1.0]])
    nv = torch.tensor([[10.0], [10.0]])
    zeros = torch.zeros(2, 1, dtype=torch.bool)
    end = torch.tensor([[True], [False]])
    term = returns.reward_to_go(r, end, zeros, 0.5, nv)
    trunc = returns.reward_to_go(r, zeros, end, 0.5, nv)
    assert term[0, 0] == 1.0  # episode over: nothing after it
    assert trunc[0, 0] == 1.0 + 0.5 * 10.0  # cut by a time limit: value of the final observation


def test_autoreset_step_of_a_real_vector_env_is_masked():
    # CartPole with a 3-step time limit: every 4th step is Gymnasium's NEXT_STEP autoreset step,
    # which has reward 0 and a reset observation; it must be invalid and get no return.
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync", max_episode_steps=3)
    envs.reset(seed=0)
    dones, rewards, terms, truncs = [], [], [], []
    for _ in range(8):
        _, r, te, tr, _ = envs.step(np.zeros(2, dtype=np.int64))
        dones.append(te | tr)
        rewards.append(r)
        terms.append(te)
        truncs.append(tr)
    dones_t = torch.as_tensor(np.array(dones))
    valid = returns.autoreset_valid_mask(torch.zeros(2, dtype=torch.bool), dones_t)
    assert valid[:, 0].tolist() == [True, True, True, False, True, True, True, False]
    rewards_t = torch.as_tensor(np.array(rewards))
    assert torch.all(rewards_t[~valid] == 0)
    rtg = returns.reward_to_go(
        rewards_t, torch.as_tensor(np.array(terms)), torch.as_tensor(np.array(truncs)), 1.0, None, valid
    )
    assert rtg[:, 0].tolist() == [3.0, 2.0, 1.0, 0.0, 3.0, 2.0, 1.0, 0.0]
    envs.close()


def test_episode_ids_are_unique_across_envs():
    dones = torch.tensor([[False, True], [True, False], [False, False]])
    ids = returns.episode_ids(torch.zeros(2, dtype=torch.bool), dones)
    assert ids[:, 0].tolist() == [0, 0, 1]
    assert ids[:, 1].tolist() == [2, 3, 3]


def test_wrong_shapes_fail_at_the_door():
    with pytest.raises(ValueError, match="shape"):
        returns.reward_to_go(
            torch.zeros(3), torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool), 0.9
        )
    with pytest.raises(ValueError, match="terminated"):
        returns.reward_to_go(
            torch.zeros(3, 2), torch.zeros(3, 1, dtype=torch.bool), torch.zeros(3, 2, dtype=torch.bool), 0.9
        )
