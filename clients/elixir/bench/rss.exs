# Memory per study: N studies each on its own worker vs N studies on one SharedWorker, each study
# with TRIALS complete trials. Prints the RSS of the worker processes (from /proc) and the cost of
# each extra study. Run from the repository root: bash scripts/elixir_bench.sh bench/rss.exs
alias OptunaBridge.{SharedWorker, Study}

n = String.to_integer(System.get_env("STUDIES", "8"))
trials = String.to_integer(System.get_env("TRIALS", "10"))
space = [x: [type: "float", low: -10.0, high: 10.0], y: [type: "int", low: 0, high: 10]]

rss_kib = fn os_pid ->
  "/proc/#{os_pid}/status"
  |> File.read!()
  |> String.split("\n")
  |> Enum.find_value(fn line ->
    case String.split(line) do
      ["VmRSS:", kib, "kB"] -> String.to_integer(kib)
      _ -> nil
    end
  end)
end

fill = fn study ->
  :ok = Study.await_ready(study, 60_000)

  for _ <- 1..trials do
    {:ok, [t]} = Study.ask(study)
    {:ok, _} = Study.tell(study, t.number, t.params["x"] * t.params["x"])
  end
end

start = fn name, opts ->
  {:ok, study} = Study.start(%{name: name, sampler: %{type: "random", seed: 1}}, space, opts)
  fill.(study)
  study
end

settle = fn -> Process.sleep(500) end

# one worker per study
own = for i <- 1..n, do: start.("own-#{i}", [])
settle.()
own_rss = Enum.map(own, &rss_kib.(Study.info(&1).os_pid))
Enum.each(own, &Study.stop/1)

# one shared worker
{:ok, _} = SharedWorker.start_link(name: :rss_shared)
first = start.("shared-1", worker: :rss_shared)
settle.()
%{os_pid: shared_pid} = SharedWorker.info(:rss_shared)
one = rss_kib.(shared_pid)
rest = for i <- 2..n, do: start.("shared-#{i}", worker: :rss_shared)
settle.()
all = rss_kib.(shared_pid)
Enum.each([first | rest], &Study.stop/1)

IO.puts("#{n} studies x #{trials} trials (RSS of the Python worker processes, KiB)")
IO.puts("  one worker per study: total #{Enum.sum(own_rss)} KiB, per study ~#{div(Enum.sum(own_rss), n)} KiB")
IO.puts("  one shared worker:    1 study #{one} KiB, #{n} studies #{all} KiB, per extra study ~#{div(all - one, n - 1)} KiB")
