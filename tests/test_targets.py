"""Targets as the record has them: which figure judges which run, and how the verdict names it."""

from spinlearn.experiments import get
from spinlearn.report import Row, experiments_with_targets


def test_iris_afd_is_judged_by_the_simulation_figure_unless_its_devices_are_real():
    exp = get("iris-afd")
    (simulated,) = exp.targets_for("simulated")
    (visa,) = exp.targets_for("visa")
    assert (simulated.metric, simulated.value, visa.metric, visa.value) == (
        "test_accuracy_mean",
        0.95,
        "test_accuracy_mean",
        0.933,
    )
    assert "[S]" in simulated.source and "[C]" in visa.source
    assert Row("iris-afd", simulated, 0.94, 0.01, 10).verdict == "below target (simulation figure)"
    assert Row("iris-afd", visa, 0.94, 0.01, 10).verdict == "reproduced (device-in-the-loop figure)"


def test_a_run_without_a_published_figure_is_reported_with_no_target():
    (target,) = get("iris-afd-2h").targets_for("simulated")
    assert target.value is None and not target.published
    row = Row("iris-afd-2h", target, 0.97, 0.02, 10)
    assert row.verdict == "no target" and row.cells()[2] == "-"
    assert "iris-afd-2h" in {e.name for e in experiments_with_targets()}


def test_hopfield_35_checks_both_readings_of_its_source_side_by_side():
    targets = {t.metric: t for t in get("hopfield-35").targets}
    film, hebbian = targets["epochs_to_target_mean"], targets["epochs_to_target_hebbian_mean"]
    assert (film.value, hebbian.value) == (9, 9) and not film.higher_is_better
    assert Row("hopfield-35", hebbian, 11.0, 0.0, 5).verdict == "below target (outer-product reading)"
    assert Row("hopfield-35", film, 3.0, 0.0, 5).verdict == "reproduced (film reading)"
