defmodule OptunaBridge.TrialLedgerTest do
  @moduledoc "The trial ledger on its own: what survives a worker restart and what is lost."
  use ExUnit.Case, async: true

  alias OptunaBridge.TrialLedger

  defp wire(number, state, x),
    do: %{"number" => number, "state" => state, "params" => %{"x" => x}}

  test "a restart keeps trials the new worker has running with the same params, and no other" do
    ledger =
      TrialLedger.new()
      |> TrialLedger.handed_out(
        for {n, x} <- [{0, 0.0}, {1, 0.1}, {2, 0.2}, {3, 0.3}],
            do: %{number: n, params: %{"x" => x}}
      )
      |> TrialLedger.told(1, 0, true)
      |> TrialLedger.told(2, 3, true)

    # the new worker: 0 complete; 1 running, same params; 2 running, other params; 3 unknown
    new = [wire(0, "complete", 0.0), wire(1, "running", 0.1), wire(2, "running", 0.9)]
    {ledger, dead} = TrialLedger.reconcile(ledger, new)

    refute TrialLedger.lost?(ledger, 0)
    refute TrialLedger.lost?(ledger, 1)
    assert TrialLedger.lost?(ledger, 2)
    assert TrialLedger.lost?(ledger, 3)
    assert dead == [{3, :lost}]
    # numbers 0..3 were handed out; the new worker would hand out 3 again
    assert TrialLedger.to_burn(ledger, new) == 1
  end

  test "tells safe in a checkpoint or settled are not reported after a restart" do
    ledger =
      TrialLedger.new()
      |> TrialLedger.handed_out([%{number: 0, params: %{}}, %{number: 1, params: %{}}])
      |> TrialLedger.told(5, 0, true)
      |> TrialLedger.told(9, 1, true)
      |> TrialLedger.safe_through(5)

    assert {_, [{1, :lost}]} = TrialLedger.reconcile(ledger, [])
    assert {_, []} = TrialLedger.reconcile(TrialLedger.settled(ledger, 1), [])
  end

  test "added trials: never handed out, numbers count as given out, lost ones reported" do
    ledger =
      TrialLedger.new()
      |> TrialLedger.handed_out([%{number: 0, params: %{"x" => 0.0}}])
      |> TrialLedger.added(3, [1, 2], true)
      |> TrialLedger.added(4, [3], false)

    refute TrialLedger.lost?(ledger, 1)
    # the new worker has 0 running and 1 complete (in a checkpoint); 2 is missing
    new = [wire(0, "running", 0.0), wire(1, "complete", 0.5)]
    {ledger, dead} = TrialLedger.reconcile(ledger, new)
    assert dead == [{2, :add_lost}]
    assert TrialLedger.lost?(ledger, 2)
    refute TrialLedger.lost?(ledger, 0)
    # numbers up to 3 were given out: 2 and 3 are burnt, never handed out with other params
    assert TrialLedger.to_burn(ledger, new) == 2
    # safe added trials are forgotten like tells
    assert {_, []} =
             TrialLedger.reconcile(
               TrialLedger.added(ledger, 7, [4], true) |> TrialLedger.safe_through(7),
               []
             )
  end

  test "lease-failed trials: finished, not lost; dropped when the worker says so" do
    ledger =
      TrialLedger.new()
      |> TrialLedger.handed_out(for n <- 0..3, do: %{number: n, params: %{"x" => n / 10}})

    # a restart: 0 failed by its lease (same params), 1 failed with other params (a burnt number)
    new = [wire(0, "fail", 0.0), wire(1, "fail", 0.9), wire(2, "running", 0.2)]
    {after_restart, []} = TrialLedger.reconcile(ledger, new)
    refute TrialLedger.lost?(after_restart, 0)
    assert TrialLedger.lost?(after_restart, 1)
    assert Map.keys(after_restart.asked) == [2]

    ledger = TrialLedger.finished(ledger, [0])
    assert Map.keys(ledger.asked) == [1, 2, 3]

    seen = [
      %OptunaBridge.Trial{number: 1, state: :fail},
      %OptunaBridge.Trial{number: 2, state: :running},
      %OptunaBridge.Trial{number: 3, state: :complete}
    ]

    assert Map.keys(TrialLedger.seen(ledger, seen).asked) == [2]
    empty = TrialLedger.new()
    assert TrialLedger.seen(empty, seen) == empty
  end

  test "refused/2 drops only the newest tell of a number (the one the worker refused)" do
    ledger =
      TrialLedger.new()
      |> TrialLedger.handed_out([%{number: 0, params: %{"x" => 1}}])
      |> TrialLedger.told(1, 0, true)
      |> TrialLedger.told(2, 0, true)

    assert [{1, 0, _}] = TrialLedger.refused(ledger, 0).told
    assert TrialLedger.refused(ledger, 7) == ledger
  end
end
