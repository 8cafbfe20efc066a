"""The shared limiter: never more than its limit in any second (counted from each answer), and a
reply waiting goes before the nudges."""
import asyncio

from bot.telegram.limiter import Window


async def _request(window: Window, low: bool, log: list, label: str, seconds: float = 0.005) -> None:
    place = await window.take(low)
    loop = asyncio.get_running_loop()
    log.append((loop.time(), label))
    await asyncio.sleep(seconds)            # the round trip
    window.give_back(place)


def _most_in_any(times: list[float], period: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + period) for t in times)


async def test_a_burst_never_exceeds_the_limit_in_any_period():
    window = Window(10, period=0.3, reserve=0)
    log: list = []
    await asyncio.gather(*(_request(window, False, log, f"r{i}") for i in range(25)))
    assert len(log) == 25
    assert _most_in_any([t for t, _ in log], 0.3) <= 10


async def test_nudges_leave_the_reserve_and_yield_to_a_waiting_reply():
    window = Window(5, period=0.3, reserve=1)
    log: list = []
    nudges = [asyncio.create_task(_request(window, True, log, f"n{i}")) for i in range(8)]
    await asyncio.sleep(0.05)
    # The nudges took 4 of the 5 places: a reply still goes out at once.
    assert [label for _, label in log] == ["n0", "n1", "n2", "n3"]
    await _request(window, False, log, "reply")
    assert log[-1][1] == "reply" and log[-1][0] - log[0][0] < 0.1
    # A reply that has to wait for a free place goes before the nudges waiting with it.
    late = asyncio.create_task(_request(window, False, log, "late reply"))
    await asyncio.gather(*nudges, late)
    order = [label for _, label in log]
    assert order.index("late reply") == 5
    assert _most_in_any([t for t, _ in log], 0.3) <= 5


async def test_a_429_is_handed_to_the_caller_without_an_error_in_the_log(caplog):
    """Flood control is waited out by the Sender; the limiter must not log it as an ERROR with a
    traceback (operators alert on those)."""
    import logging
    from datetime import timedelta

    from telegram.error import RetryAfter
    from bot.telegram.limiter import SharedLimiter

    limiter = SharedLimiter(30, max_retries=0)

    async def flooded(**kwargs):
        raise RetryAfter(timedelta(seconds=1))

    caplog.set_level(logging.INFO)
    try:
        await limiter.process_request(flooded, (), {}, "sendMessage", {"chat_id": 7}, None)
    except RetryAfter:
        pass
    else:
        raise AssertionError("the 429 must reach the caller")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
