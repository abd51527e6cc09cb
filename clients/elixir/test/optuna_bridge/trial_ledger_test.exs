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
end
