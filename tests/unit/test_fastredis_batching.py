"""How the pipelined connection groups commands into writes (no server needed)."""

import asyncio

from rotator.store.fast.protocol import PipelinedConnection
from rotator.tuning import FLUSH_EVERY


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


async def test_a_tick_is_written_in_batches_of_flush_every():
    loop = asyncio.get_running_loop()
    conn = PipelinedConnection(loop, 1.0, "test")
    transport = RecordingTransport()
    conn.connection_made(transport)
    n = 2 * FLUSH_EVERY + 3
    futures = [conn.request(b"*1\r\n$4\r\nPING\r\n") for _ in range(n)]
    # the full batches left at once, while this tick was still queueing commands
    assert [w.count(b"PING") for w in transport.writes] == [FLUSH_EVERY, FLUSH_EVERY]
    await asyncio.sleep(0)  # end of the tick: the rest goes in one write
    assert [w.count(b"PING") for w in transport.writes] == [FLUSH_EVERY, FLUSH_EVERY, 3]
    conn.data_received(b"+PONG\r\n" * n)
    assert [f.result() for f in futures] == [b"PONG"] * n
    conn.close()
