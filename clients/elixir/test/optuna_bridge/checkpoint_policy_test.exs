defmodule OptunaBridge.CheckpointPolicyTest do
  @moduledoc "The checkpoint policy on its own: by count, by time, spaced by the export's cost."
  use ExUnit.Case, async: true

  alias OptunaBridge.CheckpointPolicy, as: Policy

  defp tells(policy, n, now) do
    Enum.map_reduce(1..n, policy, fn _, p -> Policy.told(p, now) end)
  end

  test "by count: every 100th tell exports, the ones before arm the interval timer once" do
    {actions, p} = tells(Policy.new([]), 100, 0)
    assert hd(actions) == {:arm, 5_000}
    assert Enum.count(actions, &(&1 == {:arm, 5_000})) == 1
    assert List.last(actions) == :export
    assert %{sent: 1, dirty: 0} = Policy.exported(p)
  end

  test "by time: a lone tell is exported when the timer fires" do
    {{:arm, 5_000}, p} = Policy.told(Policy.new([]), 0)
    assert {:export, _} = Policy.fired(p, 5_000)
  end

  test "spacing: after an export that took 50 ms, the next waits 20 x 50 ms" do
    p = Policy.new(checkpoint_every: 1) |> Policy.exported() |> Policy.finished(0, 50)
    assert {{:arm, 1_000}, p} = Policy.told(p, 50)
    assert {{:arm, 500}, p} = Policy.fired(p, 550)
    assert {:export, _} = Policy.fired(p, 1_050)
  end

  test "off, and the old export-after-every-tell when asked for explicitly" do
    off = Policy.new(checkpoint_every: 0, checkpoint_interval: 0)
    assert Policy.off?(off)
    assert {:wait, _} = Policy.told(off, 0)

    every = Policy.new(checkpoint_every: 1, checkpoint_interval: 0, checkpoint_spacing: 0)
    p = every |> Policy.exported() |> Policy.finished(0, 50)
    assert {:export, _} = Policy.told(p, 50)
  end
end
