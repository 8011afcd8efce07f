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


def test_no_slot_while_busy() -> None:
    busy = [True]
    budget = SpeculationBudget(2, busy=lambda: busy[0])
    assert not budget.claim() and budget.in_flight == 0
    busy[0] = False
    assert budget.claim()


def test_the_runtime_budget_is_spent_from_the_configured_call_count_on() -> None:
    from typing import Any, cast

    from bot.call.runtime import Runtime
    from bot.settings import Settings

    unused = cast(Any, None)  # the budget reads only the settings and the call count
    runtime = Runtime(
        Settings.load({"CALLAGENT_NO_EARLY_RUNS_FROM_CALLS": "6"}),
        unused,
        None,
        None,
        unused,
        unused,
        None,
    )
    runtime.active_calls = 5
    assert runtime.speculation.claim()
    runtime.speculation.release()
    runtime.active_calls = 6
    assert not runtime.speculation.claim()
    never = Runtime(
        Settings.load({"CALLAGENT_NO_EARLY_RUNS_FROM_CALLS": "0"}),
        unused,
        None,
        None,
        unused,
        unused,
        None,
    )
    never.active_calls = 100
    assert never.speculation.claim()
