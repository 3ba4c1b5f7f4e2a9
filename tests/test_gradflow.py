"""Gradient flow: per-loss backward against finite differences and the trainer, decay rates on
orthogonal recurrences, impulse responses, and the `charrnn gradflow` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.checkpoint import Checkpoint, save_checkpoint
from charrnn.cli import main
from charrnn.config import Config
from charrnn.gradcheck import rel_error
from charrnn.gradflow import (
    activation_derivative,
    analyse_chunk,
    chunk_forward,
    fit_decay,
    impulse_response,
    jacobian_gains,
    linear_recurrence,
    per_loss_backward,
    xh_components,
)
from charrnn.model import init_params, loss_and_grads, rnn_forward, scatter_rows
from charrnn.vocab import Vocabulary

NAMES = "anna\nbob\nchristopher\ndora\neve\n"


def orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def near_linear_params(gain: float, hidden: int = 16, vocab: int = 5, seed: int = 0) -> dict:
    """W_hh = gain * orthogonal; inputs and biases so small that tanh'(a) stays within 1e-6 of 1."""
    rng = np.random.default_rng(seed)
    params = init_params(vocab, hidden, 1e-7, rng, "float64")
    params["W_hh"] = gain * orthogonal(hidden, rng)
    params["W_hy"] = rng.standard_normal((vocab, hidden))  # outside the recurrence: any size
    return params


def random_problem(activation: str = "tanh", T: int = 7, hidden: int = 5, vocab: int = 4,
                   seed: int = 1):
    """A nonlinear model (pre-activations of order 1), a nonzero h0 and a random chunk."""
    rng = np.random.default_rng(seed)
    params = init_params(vocab, hidden, 0.6, rng, "float64")
    params["b_h"] = rng.standard_normal(hidden) * 0.3
    x = rng.integers(vocab, size=T)
    y = rng.integers(vocab, size=T)
    h0 = rng.standard_normal(hidden) * 0.5
    return params, x, y, h0


def chunk(T: int, vocab: int = 5, seed: int = 2):
    rng = np.random.default_rng(seed)
    return rng.integers(vocab, size=T), rng.integers(vocab, size=T)


# --- the numbers -------------------------------------------------------------------------------

def test_gradient_decays_at_least_as_fast_as_half_per_step_with_half_orthogonal_W_hh():
    T = 20
    x, y = chunk(T)
    flow = analyse_chunk(near_linear_params(0.5), x, y)
    norms_by_lag = flow.last_loss_grad_norms[::-1]
    bound = norms_by_lag[0] * 0.5 ** np.arange(T)
    assert np.all(norms_by_lag <= bound * (1 + 1e-9))
    # near-linear: the bound is met with equality, so the fitted rate is 0.5 itself
    assert np.allclose(norms_by_lag, bound, rtol=1e-5)
    assert flow.decay.rate_per_step == pytest.approx(0.5, rel=1e-5)
    assert flow.decay.vanished_at_lag == 10  # 0.5^10 < 1e-3 < 0.5^9


def test_gradient_grows_with_one_and_a_half_orthogonal_W_hh_in_the_near_linear_regime():
    T = 20
    x, y = chunk(T)
    flow = analyse_chunk(near_linear_params(1.5), x, y)
    norms_by_lag = flow.last_loss_grad_norms[::-1]
    assert np.all(np.diff(norms_by_lag) > 0)
    assert np.allclose(norms_by_lag, norms_by_lag[0] * 1.5 ** np.arange(T), rtol=1e-4)
    assert flow.decay.rate_per_step == pytest.approx(1.5, rel=1e-4)
    assert flow.singular_values[0] == pytest.approx(1.5)
    assert (flow.singular_values > 1).sum() == 16


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_components_sum_to_the_trainers_gradient_in_float64(activation):
    params, x, y, h0 = random_problem(activation, T=9)
    flow = analyse_chunk(params, x, y, h0, activation)
    assert flow.sum_difference < 1e-10
    assert flow.sum_ok
    # the same sum rebuilt from the pieces, against charrnn.model.loss_and_grads directly
    h, _, dh_out, cache = chunk_forward(params, x, y, h0, activation)
    dh, _ = per_loss_backward(dh_out, cache)
    norms, total = xh_components(dh, activation_derivative(h, activation), x, 4)
    _, _, grads, _, _ = loss_and_grads(params, x[:, None], y[:, None], h0[None], None, activation)
    assert np.max(np.abs(total - grads["W_xh"])) < 1e-10
    assert np.max(np.abs(grads["W_xh"])) > 1e-3  # a real gradient, not two zeros agreeing
    assert np.all(norms[np.triu_indices(9, 1)] == 0)  # no loss reaches a later input
    assert np.all(np.diagonal(norms) > 0)


def _step_losses(params, x, y, h0):
    return chunk_forward(params, x, y, h0, "tanh")[1]


def test_per_loss_backward_matches_finite_differences_through_h0():
    params, x, y, h0 = random_problem("tanh", T=6)
    _, _, dh_out, cache = chunk_forward(params, x, y, h0, "tanh")
    _, dh0 = per_loss_backward(dh_out, cache)  # (T, H): dL_t/dh_{-1}
    eps = 1e-5
    numeric = np.empty_like(dh0)
    for i in range(len(h0)):
        step = np.zeros_like(h0)
        step[i] = eps
        numeric[:, i] = (_step_losses(params, x, y, h0 + step)
                         - _step_losses(params, x, y, h0 - step)) / (2 * eps)
    assert np.max(rel_error(dh0, numeric)) < 1e-6
    assert np.all(np.abs(dh0[-1]) > 0)  # the last loss reaches the initial state


def test_each_loss_steps_W_xh_gradient_matches_finite_differences():
    params, x, y, h0 = random_problem("tanh", T=5, hidden=4, vocab=3)
    h, _, dh_out, cache = chunk_forward(params, x, y, h0, "tanh")
    dh, _ = per_loss_backward(dh_out, cache)
    da = activation_derivative(h, "tanh")[:, None, :] * dh  # (k, t, H)
    eps = 1e-5
    for t in range(len(x)):
        analytic = scatter_rows(x, da[:, t], 3).T  # sum over k of component (t, k)
        numeric = np.empty_like(params["W_xh"])
        for index in np.ndindex(params["W_xh"].shape):
            plus = {**params, "W_xh": params["W_xh"].copy()}
            minus = {**params, "W_xh": params["W_xh"].copy()}
            plus["W_xh"][index] += eps
            minus["W_xh"][index] -= eps
            numeric[index] = (_step_losses(plus, x, y, h0)[t]
                              - _step_losses(minus, x, y, h0)[t]) / (2 * eps)
        used = np.isin(np.arange(3), x[: t + 1])
        assert np.max(rel_error(analytic[:, used], numeric[:, used])) < 1e-6
        assert np.all(analytic[:, ~used] == 0) and np.all(np.abs(numeric[:, ~used]) < 1e-9)


def test_jacobian_gains_match_finite_differences_of_the_state():
    params, x, _, h0 = random_problem("tanh", T=6, hidden=4)
    h, _ = rnn_forward(x[:, None], h0[None], params["W_xh"], params["W_hh"], params["b_h"])
    gains, linear = jacobian_gains(activation_derivative(h[:, 0], "tanh"), params["W_hh"])
    eps = 1e-6
    jacobians = np.empty((len(x), 4, 4))  # dh_t/dh_0 by perturbing h_0 and running steps 1..t
    for i in range(4):
        step = np.zeros((1, 4))
        step[0, i] = eps
        runs = [rnn_forward(x[1:, None], h[0] + s, params["W_xh"], params["W_hh"],
                            params["b_h"])[0][:, 0] for s in (step, -step)]
        jacobians[1:, :, i] = (runs[0] - runs[1]) / (2 * eps)
    jacobians[0] = np.eye(4)
    expected = np.linalg.norm(jacobians, axis=(1, 2)) / 2.0  # Frobenius / sqrt(H)
    assert np.allclose(gains, expected, rtol=1e-7)
    powers = [np.linalg.matrix_power(params["W_hh"], t) for t in range(len(x))]
    assert np.allclose(linear, np.linalg.norm(powers, axis=(1, 2)) / 2.0, rtol=1e-12)


def test_linear_recurrence_impulse_response_is_w_to_the_t():
    impulse = np.zeros((30, 2))
    impulse[0] = 1.0
    h = linear_recurrence(np.array([-0.9, 1.1]), impulse)
    t = np.arange(30)
    assert np.allclose(h[:, 0], (-0.9) ** t) and np.allclose(h[:, 1], 1.1 ** t)
    assert fit_decay(np.abs(h[:, 0])).rate_per_step == pytest.approx(0.9)
    assert fit_decay(h[:, 1]).rate_per_step == pytest.approx(1.1)


def test_impulse_response_of_half_orthogonal_model_decays_like_w_one_half():
    x, _ = chunk(15)
    impulse = impulse_response(near_linear_params(0.5), x)
    assert np.allclose(impulse.model_gain, 0.5 ** np.arange(15), rtol=1e-5)
    assert impulse.linear_decay.rate_per_step == pytest.approx(0.5)
    assert impulse.scalar[3].tolist() == pytest.approx([-0.729, 1.331])


def test_fit_decay_reads_rate_tenfold_and_where_it_dies():
    decay = fit_decay(3.0 * 0.1 ** np.arange(6))
    assert decay.rate_per_step == pytest.approx(0.1)
    assert decay.steps_per_tenfold == pytest.approx(1.0)
    assert decay.vanished_at_lag == 4  # 1e-4 < 1e-3 <= 1e-3 at lag 3
    assert fit_decay(np.array([0.0, 0.0])).rate_per_step is None


# --- the command ----------------------------------------------------------------------------------

def write_checkpoint(tmp_path, mode="lines", dtype="float64", corpus_text=NAMES, hidden=6):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text, encoding="utf-8")
    config = Config().replace(data={"corpus": str(corpus), "mode": mode},
                              model={"hidden_size": hidden, "dtype": dtype})
    vocab = Vocabulary.from_text(corpus_text, extra="\n")
    params = init_params(len(vocab), hidden, 0.5, np.random.default_rng(0), dtype)
    path = tmp_path / "model.npz"
    save_checkpoint(path, Checkpoint(config, vocab, params))
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_gradflow_text_report_has_the_three_parts_and_the_check(tmp_path):
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "longest line of corpus" in out and "'\\nchristopher\\n'" in out
    assert "12 inputs" in out
    assert "||dL_{T-1}/dh_k||" in out and "per step back" in out
    assert "sum to the trainer's dW_xh" in out and ": ok" in out
    assert "singular values of W_hh: largest" in out and "|h| > 0.95" in out


def test_gradflow_json_of_a_float32_checkpoint_is_checked_in_float64(tmp_path):
    path = write_checkpoint(tmp_path, mode="stream", dtype="float32",
                            corpus_text="the cat sat on the mat and the dog sat too. " * 3)
    result = run("gradflow", "--checkpoint", path, "--length", 30, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["text_source"].startswith("the start of corpus")
    assert report["text"] == "the cat sat on the mat and the d"[:31]
    assert report["length"] == 30 and len(report["last_loss_grad_norms"]) == 30
    assert np.array(report["W_xh_component_norms"]).shape == (30, 30)
    assert report["W_xh_sum_check"]["ok"] and report["W_xh_sum_check"]["max_abs_difference"] < 1e-10
    assert report["W_hh"]["sigma_max"] == pytest.approx(report["W_hh"]["singular_values"][0])
    assert 0 <= report["saturated_fraction"] <= 1 and 0 < report["mean_activation_derivative"] <= 1


def test_gradflow_prime_with_unknown_characters_is_a_one_line_error(tmp_path):
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path), "--prime", "anna?Z")
    assert result.exit_code == 1
    assert "--prime has 2 character(s) outside the model's vocabulary: '?', 'Z'" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_gradflow_text_and_prime_exclude_each_other(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("anna\n", encoding="utf-8")
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path), "--text", text,
                 "--prime", "bob")
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_gradflow_falls_back_to_the_models_sample_without_its_corpus(tmp_path):
    path = write_checkpoint(tmp_path)
    (tmp_path / "corpus.txt").unlink()
    result = run("gradflow", "--checkpoint", path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "sample (seed 0" in report["text_source"]
    assert report["text"].startswith("\n") and set(report["text"]) <= set(NAMES)
    assert report["length"] == len(report["text"]) - 1 <= 50
    assert report["lines_crossed"] == 0


def test_gradflow_warns_when_a_lines_model_carries_state_across_lines(tmp_path):
    result = CliRunner().invoke(main, ["gradflow", "--checkpoint",
                                       str(write_checkpoint(tmp_path)), "--prime", "anna\nbob",
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert "across 1 newline(s)" in result.stderr
    assert json.loads(result.stdout)["text"] == "\nanna\nbob\n"


def test_gradflow_impulse_prints_both_scalar_responses_and_the_model(tmp_path):
    result = run("gradflow", "--checkpoint", write_checkpoint(tmp_path), "--impulse",
                 "--prime", "christopher")
    assert result.exit_code == 0, result.output
    assert "w=-0.9" in result.output and "w=1.1" in result.output
    row = next(line for line in result.output.splitlines() if line.strip().startswith("2 "))
    assert row.split()[1:3] == ["8.100e-01", "1.210e+00"]
    assert "model, fitted" in result.output
