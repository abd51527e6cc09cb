# Cost of the in-memory checkpoint policy: 1000 ask/tell trials (random sampler, tell as a cast,
# as in the README's loop) with the default policy, with checkpoints off, and with the old
# "export after every tell". Run from the repository root: bash scripts/elixir_bench.sh
alias OptunaBridge.Study

trials = String.to_integer(System.get_env("TRIALS", "1000"))
rounds = String.to_integer(System.get_env("ROUNDS", "5"))
space = %{x: [type: "float", low: -10.0, high: 10.0], y: [type: "int", low: 0, high: 10]}

modes = [
  {"default (every 100 tells or 5 s, spaced)", []},
  {"checkpoints off", [checkpoint_every: 0, checkpoint_interval: 0]}
]

# quadratic: only at the issue's size
modes =
  if trials <= 1000,
    do:
      modes ++
        [
          {"export after every tell",
           [checkpoint_every: 1, checkpoint_interval: 0, checkpoint_spacing: 0]}
        ],
    else: modes

run = fn opts ->
  {:ok, study} = Study.start(%{name: "bench", sampler: %{type: "random", seed: 1}}, space, opts)
  :ok = Study.await_ready(study)
  t0 = System.monotonic_time(:microsecond)

  marks =
    for i <- 1..trials do
      {:ok, [%{number: n, params: %{"x" => x}}]} = Study.ask(study, 1, timeout: 60_000)
      :ok = Study.tell_async(study, n, x * x)
      if i == trials - 250, do: System.monotonic_time(:microsecond), else: nil
    end

  # everything told is processed once a later request is answered
  {:ok, _} = Study.trials(study, states: [:complete], timeout: 60_000)
  t1 = System.monotonic_time(:microsecond)
  last_quarter_start = Enum.find(marks, & &1)
  info = Study.info(study)
  :ok = Study.stop(study)
  {(t1 - t0) / 1.0e6, (t1 - last_quarter_start) / 1.0e6, info.checkpoints}
end

median = fn xs -> xs |> Enum.sort() |> Enum.at(div(length(xs), 2)) end

# Rounds interleave the modes (default, off, default, off, ...) so that a change in the machine's
# load hits both alike; the ratio is the median of the per-round ratios.
[{default_label, default_opts}, {off_label, off_opts} | slow] = modes

rounds_out =
  for _ <- 1..rounds do
    d = run.(default_opts)
    o = run.(off_opts)
    {d, o}
  end

report = fn label, runs ->
  total = median.(Enum.map(runs, &elem(&1, 0)))
  last = median.(Enum.map(runs, &elem(&1, 1)))
  exports = median.(Enum.map(runs, &elem(&1, 2)))

  IO.puts(
    :io_lib.format("~-44s total ~7.3f s   last 250 trials ~7.3f s   exports ~B", [
      label,
      total,
      last,
      exports
    ])
  )
end

report.(default_label, Enum.map(rounds_out, &elem(&1, 0)))
report.(off_label, Enum.map(rounds_out, &elem(&1, 1)))
# the per-tell export is quadratic: one round is enough to see it
for {label, opts} <- slow, do: report.(label, [run.(opts)])

ratio = median.(Enum.map(rounds_out, fn {{d, _, _}, {o, _, _}} -> d / o end))

IO.puts(
  :io_lib.format("default / off = ~.2fx (median of ~B interleaved rounds, ~B trials)", [
    ratio,
    rounds,
    trials
  ])
)
