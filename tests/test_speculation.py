"""Speculative runs are bounded process-wide; a slot comes back however the run ends."""

from concurrent.futures import ThreadPoolExecutor

from integrations.speech.speculation import SpeculationBudget


def test_slots_are_bounded_and_given_back_when_runs_finish() -> None:
    budget = SpeculationBudget(2)
    assert budget.claim() and budget.claim()
    assert not budget.claim()  # both cores busy: this one is skipped
    assert budget.skipped == 1
    budget.release()
    assert budget.claim()
    assert budget.in_flight == 2


def test_a_cancelled_run_gives_its_slot_back() -> None:
    budget = SpeculationBudget(1)
    with ThreadPoolExecutor(1) as pool:
        blocker = pool.submit(lambda: None)
        blocker.result()
        assert budget.claim()
        never_runs = pool.submit(lambda: None)
        never_runs.cancel()  # may or may not win the race; the callback fires either way
        never_runs.add_done_callback(budget.release)
        never_runs.exception() if not never_runs.cancelled() else None
    assert budget.in_flight == 0
    assert budget.claim()


def test_at_least_one_slot() -> None:
    assert SpeculationBudget(0).slots == 1
