"""The benchmark harness: its smoke mode runs end to end, and its agreement check bites."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxent as je
from benchmarks import cases, harness, targets
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
    assert [t["id"] for t in data["targets"]] == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_quick_fused_run_prints_tables_and_writes_json(tmp_path, capsys):
    out_file = tmp_path / "results.json"
    main(["--quick", "--only", "fused", "--json", str(out_file)])
    text = capsys.readouterr().out
    assert "## fused" in text and "## Targets" in text
    for dtype in ("float32", "bfloat16"):
        for name in ("dense", "fused", "optax"):
            assert f"| vg | [64, 32, 4096] | {dtype} | {name} |" in text
    data = json.loads(out_file.read_text())
    assert data["meta"]["groups"] == ["fused"]
    records = data["records"]
    assert [(r["group"], r["case"], r["dtype"]) for r in records] == [
        ("fused", "vg", "float32"),
        ("fused", "vg", "bfloat16"),
    ]
    for rec in records:
        by_name = {v["name"]: v for v in rec["variants"]}
        assert list(by_name) == ["dense", "fused", "optax"] and rec["baseline"] == "dense"
        assert by_name["dense"]["ratio_to_baseline"] == 1.0
        for v in rec["variants"]:
            assert v["median_ms"] > 0 and len(v["times_ms"]) == data["meta"]["repeats"]
            assert v["max_rel_err"] is not None  # every variant is compared with dense
        rtol = 1e-4 if rec["dtype"] == "float32" else 6e-2
        assert by_name["fused"]["max_rel_err"] <= rtol
        assert 0 < by_name["fused"]["temp_bytes"] < by_name["dense"]["temp_bytes"]
    fused_target = next(t for t in data["targets"] if t["id"] == 7)
    assert fused_target["id"] == 7 and len(fused_target["checks"]) == 2
    for check, rec in zip(fused_target["checks"], records, strict=True):
        by_name = {v["name"]: v for v in rec["variants"]}
        assert check["shape"] == [64, 32, 4096] and check["dtype"] == rec["dtype"]
        assert check["value"] == by_name["fused"]["temp_bytes"] / by_name["dense"]["temp_bytes"]


def test_fused_agreement_check_catches_a_wrong_gradient():
    case = next(cases.cases("fused", quick=True))
    dense, fused, _ = case.variants
    assert (dense.name, fused.name) == ("dense", "fused")

    def wrong(hidden, weight, labels):
        value, (d_hidden, d_weight) = fused.fn(hidden, weight, labels)
        return value, (d_hidden, 1.01 * d_weight)

    case.variants = [dense, harness.Variant("wrong", wrong, fused.args)]
    with pytest.raises(harness.AgreementError, match="'wrong' disagrees with 'dense'"):
        harness.measure(case, 1)


def test_temp_bytes_is_the_temp_of_the_tables():
    case = next(cases.cases("fused", quick=True))
    results = harness.measure(case, 1)
    for v, r in zip(case.variants, results, strict=True):
        shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in v.args]
        assert harness.temp_bytes(v.fn, *v.args) == harness.temp_bytes(v.fn, *shapes)
        assert harness.temp_bytes(v.fn, *v.args) == r.temp_bytes


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


def _fake(group, case, ms: dict, temp=0, shape=(64, 512), dtype="float32"):
    return {
        "group": group,
        "case": case,
        "shape": list(shape),
        "dtype": dtype,
        "data_bytes": 1000,
        "variants": [
            {"name": n, "median_ms": t, "temp_bytes": temp if n == "jaxent" else 0}
            for n, t in ms.items()
        ],
    }


def test_logits_family_targets_compare_with_the_best_alternative():
    records = [
        _fake("xent_soft", "fwd", {"jaxent": 3.0, "optax": 2.0, "naive": 4.0, "sum_exp": 1.0}),
        _fake("kl_logits", "vg", {"jaxent": 1.0, "optax": 2.0, "copy": 0.5}, temp=20),
        _fake("xent_int", "vg", {"jaxent": 1.2, "optax": 2.0, "copy": 1.0}),
        _fake("xent_int", "vg", {"jaxent": 1.3, "optax": 2.0, "copy": 1.0}, dtype="bfloat16"),
    ]
    got = {t["id"]: t for t in targets.evaluate(records, quick=True)}
    checks = {(c["what"], c["dtype"]): c for c in got[8]["checks"]}
    assert checks["xent_soft fwd: jaxent / optax time", "float32"]["value"] == 1.5
    assert checks["xent_soft fwd: jaxent / sum_exp time", "float32"]["value"] == 3.0
    assert checks["kl_logits vg: jaxent / optax time", "float32"]["met"]
    assert not checks["kl_logits vg: temp / logits bytes", "float32"]["met"]  # 2%
    assert not got[8]["met"]
    assert [c["met"] for c in got[9]["checks"]] == [True, False]


def test_probes_quick_run_prints_every_probe(capsys):
    from benchmarks import probes

    probes.main(["--quick"])
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| ")]
    rows = [x for x in lines if not x.startswith("| probe")]
    assert {r.split(" | ")[0][2:] for r in rows} == {
        "loop",
        "bf16_loop",
        "int_vg",
        "routes",
        "fast_route",
        "masked",
        "kl_support",
    }
    assert all(r.count("|") == 7 for r in rows), rows
    # Rows shorter than the blocked threshold (all of them here): their whole statistics.
    variants = {r.split(" | ")[3] for r in rows if r.startswith("| int_vg")}
    assert "row statistics" in variants, variants
