"""The hot path's pipelined Redis client, in parts; callers import rotator.store.fastredis.

endpoint.py  one server to dial, from the URL read by rotator/store/address.py
protocol.py  one pipelined connection: asyncio.Protocol + hiredis, writes gathered per loop tick
node.py      one server: reconnects on demand, fails fast while the server is down
cluster.py   slot map and MOVED/ASK routing over one Node per primary
"""
