# Lock-step ask/tell through an Erlang Port (the worker's own framing, no client layers), for
# scripts/bench_io.py (`make bench`): TRIALS trials after WARMUP unmeasured ones, one line of JSON
# on stdout with the seconds per measured trial. Run: bash scripts/elixir_bench.sh bench/port_lockstep.exs
alias OptunaBridge.JSON

trials = String.to_integer(System.get_env("TRIALS", "1000"))
warmup = String.to_integer(System.get_env("WARMUP", "200"))
python = System.fetch_env!("OPTUNA_BRIDGE_PYTHON")

port =
  Port.open({:spawn_executable, python}, [
    :binary,
    :exit_status,
    {:line, 65_536},
    args: ["-m", "bridge_worker", "--log-level", "warning"]
  ])

read = fn ->
  receive do
    {^port, {:data, {:eol, line}}} -> JSON.decode!(line)
  after
    60_000 -> raise "no reply"
  end
end

call = fn method, params ->
  Port.command(port, [JSON.encode!(%{"id" => 1, "method" => method, "params" => params}), ?\n])
  read.()
end

_ready = read.()

space = %{
  "x" => %{"type" => "float", "low" => -10.0, "high" => 10.0},
  "n" => %{"type" => "int", "low" => 1, "high" => 100},
  "c" => %{"type" => "categorical", "choices" => ["a", "b", "c"]}
}

call.("create", %{
  "study" => "p",
  "search_space" => space,
  "sampler" => %{"type" => "random", "seed" => 1}
})

one = fn ->
  %{"result" => %{"trials" => [%{"number" => n, "params" => %{"x" => x, "n" => k}}]}} =
    call.("ask", %{"study" => "p"})

  call.("tell", %{"study" => "p", "number" => n, "value" => x * x + k / 100})
end

for _ <- 1..warmup, do: one.()
t0 = System.monotonic_time(:microsecond)
for _ <- 1..trials, do: one.()
t1 = System.monotonic_time(:microsecond)
Port.close(port)
IO.puts(JSON.encode!(%{"seconds_per_trial" => (t1 - t0) / trials / 1.0e6}))
