"""The benchmark harness: its smoke mode runs end to end, and its agreement check bites."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxent as je
from benchmarks import harness
from benchmarks.__main__ import main


def test_quick_run_prints_tables_and_writes_json(tmp_path, capsys):
    out_file = tmp_path / "results.json"
    main(["--quick", "--only", "xent_int", "--only", "measures", "--json", str(out_file)])
    text = capsys.readouterr().out
    assert "## xent_int" in text and "## measures" in text and "## Targets" in text
    assert f"jax {jax.__version__}" in text
    assert "| fwd | [64, 512] | float32 | jaxent |" in text
    data = json.loads(out_file.read_text())
    meta = data["meta"]
    assert meta["versions"]["jax"] == jax.__version__
    assert meta["device_kind"] and meta["date"] and meta["quick"] is True
    groups = {r["group"] for r in data["records"]}
    assert groups == {"xent_int", "measures"}
    for rec in data["records"]:
        names = [v["name"] for v in rec["variants"]]
        assert names[0] == "jaxent"
        for v in rec["variants"]:
            assert v["median_ms"] > 0 and len(v["times_ms"]) == meta["repeats"]
    vg = next(r for r in data["records"] if r["case"] == "vg" and r["dtype"] == "float32")
    by_name = {v["name"]: v for v in vg["variants"]}
    assert by_name["optax"]["max_rel_err"] < 1e-4  # compared, and agreeing
    assert by_name["copy"]["max_rel_err"] is None  # a machine limit: never compared
    assert [t["id"] for t in data["targets"]] == [1, 2, 3, 4, 5, 6]


def _case(wrong, rtol: float = 1e-4) -> harness.Case:
    key = jax.random.key(0)
    x = jax.random.normal(key, (32, 128))
    y = jax.random.randint(jax.random.key(1), (32,), 0, 128)

    def vg(f):
        return jax.value_and_grad(lambda x, y: jnp.sum(f(x, y)))

    variants = [
        harness.Variant("jaxent", vg(je.softmax_cross_entropy_with_integer_labels), (x, y)),
        harness.Variant(
            "optax", vg(optax.losses.softmax_cross_entropy_with_integer_labels), (x, y)
        ),
        harness.Variant("wrong", vg(wrong), (x, y)),
    ]
    return harness.Case("test", "vg", x.shape, "float32", variants, rtol=rtol)


def test_agreement_passes_for_equal_variants():
    results = harness.measure(_case(optax.losses.softmax_cross_entropy_with_integer_labels), 1)
    assert [r.name for r in results] == ["jaxent", "optax", "wrong"]
    assert all(r.max_rel_err is not None and r.max_rel_err < 1e-5 for r in results)


@pytest.mark.parametrize(
    "wrong",
    [
        # value off by 0.1%
        lambda x, y: 1.001 * optax.losses.softmax_cross_entropy_with_integer_labels(x, y),
        # right value, wrong gradient: the label logit's term uses the next class
        lambda x, y: (
            optax.losses.softmax_cross_entropy_with_integer_labels(x, (y + 1) % x.shape[-1])
            + jax.lax.stop_gradient(
                optax.losses.softmax_cross_entropy_with_integer_labels(x, y)
                - optax.losses.softmax_cross_entropy_with_integer_labels(x, (y + 1) % x.shape[-1])
            )
        ),
        # a NaN where the others are finite
        lambda x, y: jnp.where(
            jnp.arange(y.shape[0]) == 3,
            jnp.nan,
            optax.losses.softmax_cross_entropy_with_integer_labels(x, y),
        ),
    ],
    ids=["value", "gradient", "nan"],
)
def test_agreement_check_catches_a_wrong_variant(wrong):
    with pytest.raises(harness.AgreementError, match="'wrong' disagrees"):
        harness.measure(_case(wrong), 1)


def test_agree_scales_errors_by_typical_size():
    b = np.array([1e-8, 1.0, -2.0])
    assert harness.agree(b + np.array([1e-6, 0.0, 0.0]), b, 1e-5) < 1e-5
    with pytest.raises(harness.AgreementError):
        harness.agree(b * np.array([1.0, 1.01, 1.0]), b, 1e-3)
