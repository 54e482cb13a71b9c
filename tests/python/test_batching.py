"""Dynamic batching seen from outside: concurrent requests at `identity_fp32` (preferred batch
sizes 4 and 8, 20 ms queue delay) are executed in batches of the preferred sizes, as the
statistics extension's per-batch-size counts show."""
import asyncio

import numpy as np
import tritonclient.http.aio as aiohttp_client
import tritonclient.http as httpclient


def batch_counts(c):
    s = c.get_inference_statistics("identity_fp32")["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in s.get("batch_stats", [])}


async def fire(server, n):
    async with aiohttp_client.InferenceServerClient(server.http) as c:
        async def one(i):
            x = np.full((1, 3), i, dtype=np.float32)
            inp = aiohttp_client.InferInput("INPUT0", [1, 3], "FP32")
            inp.set_data_from_numpy(x)
            r = await c.infer("identity_fp32", [inp])
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), x)
        await asyncio.gather(*(one(i) for i in range(n)))


def test_concurrent_requests_run_in_preferred_batches(server):
    c = httpclient.InferenceServerClient(server.http)
    for _ in range(3):
        before = batch_counts(c)
        asyncio.run(fire(server, 8))
        after = batch_counts(c)
        new = {size: after.get(size, 0) - before.get(size, 0) for size in after}
        new = {size: n for size, n in new.items() if n}
        assert sum(size * n for size, n in new.items()) == 8, new
        assert set(new) <= {4, 8}, f"executed in batches of other sizes: {new}"
