# The full client per trial: `Study.ask` + `Study.tell` (each a GenServer call through the study
# process, its worker's Port and back), lock-step, in-memory storage, RandomSampler over the same
# three parameters as scripts/bench_io.py. MODE=async tells with `Study.tell_async` instead (the
# README's loop: the tell travels with the next ask). TRIALS trials after WARMUP unmeasured ones;
# one line of JSON on stdout with the seconds per measured trial, as bench/port_lockstep.exs.
# Run: bash scripts/elixir_bench.sh bench/study_lockstep.exs
alias OptunaBridge.Study

trials = String.to_integer(System.get_env("TRIALS", "1000"))
warmup = String.to_integer(System.get_env("WARMUP", "200"))
async = System.get_env("MODE", "sync") == "async"

space = %{
  x: [type: "float", low: -10.0, high: 10.0],
  n: [type: "int", low: 1, high: 100],
  c: [type: "categorical", choices: ["a", "b", "c"]]
}

{:ok, study} = Study.start(%{name: "bench", sampler: %{type: "random", seed: 1}}, space)
:ok = Study.await_ready(study)

one = fn ->
  {:ok, [%{number: n, params: %{"x" => x, "n" => k}}]} = Study.ask(study, 1, timeout: 60_000)

  if async,
    do: :ok = Study.tell_async(study, n, x * x + k / 100),
    else: {:ok, _} = Study.tell(study, n, x * x + k / 100, timeout: 60_000)
end

for _ <- 1..warmup, do: one.()
t0 = System.monotonic_time(:microsecond)
for _ <- 1..trials, do: one.()
# an async tell is processed once a later request is answered
if async, do: {:ok, _} = Study.ask(study, 1, timeout: 60_000)
t1 = System.monotonic_time(:microsecond)
:ok = Study.stop(study)
IO.puts(OptunaBridge.JSON.encode!(%{"seconds_per_trial" => (t1 - t0) / trials / 1.0e6}))
