-- wrk's `done` hook (`wrk --script`): its summary as one JSON line; latencies are microseconds.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"rps": %.2f, "p50_ms": %.3f, "p99_ms": %.3f, "errors": %d}\n',
    summary.requests / summary.duration * 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, e.connect + e.read + e.write + e.status + e.timeout))
end
