"""The agent's ledger of the tasks it ran: kept across restarts, shared by processes, pruned."""

from __future__ import annotations

import time

from agent import guard


def _forget_what_this_process_read() -> None:
    guard._RAN.clear()  # as a new agent process starts


def test_a_task_that_ran_is_known_after_a_restart_and_to_another_process(tmp_path):
    first = guard.Ledger(tmp_path)
    first.remember(task_id="task-0001-aaaa", task="agent.switch", expires_at=int(time.time()) + 60, answer={"ok": True})
    assert first.answer_of("task-0001-aaaa")["answer"] == {"ok": True}

    _forget_what_this_process_read()
    second = guard.Ledger(tmp_path)
    assert second.answer_of("task-0001-aaaa")["task"] == "agent.switch"
    # Appended by the other process after this one read the file: seen on the next look-up.
    first.remember(task_id="task-0002-bbbb", task="agent.report", expires_at=int(time.time()) + 60, answer={})
    assert second.answer_of("task-0002-bbbb") is not None
    assert second.answer_of("task-9999-zzzz") is None


def test_expired_entries_are_dropped_when_the_ledger_is_pruned(tmp_path, monkeypatch):
    ledger = guard.Ledger(tmp_path)
    ledger.remember(task_id="old-task-0001", task="agent.switch", expires_at=int(time.time()) - 1, answer={})
    ledger.remember(task_id="new-task-0002", task="agent.switch", expires_at=int(time.time()) + 60, answer={})
    monkeypatch.setattr(guard, "PRUNE_EVERY_S", 0.0)
    ledger.remember(task_id="new-task-0003", task="agent.switch", expires_at=int(time.time()) + 60, answer={})

    lines = (tmp_path / guard.LEDGER / "ran.jsonl").read_text().splitlines()
    assert len(lines) == 2 and not any("old-task-0001" in line for line in lines)
    _forget_what_this_process_read()
    assert guard.Ledger(tmp_path).answer_of("old-task-0001") is None
    assert guard.Ledger(tmp_path).answer_of("new-task-0003") is not None
