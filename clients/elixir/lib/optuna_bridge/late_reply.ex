defmodule OptunaBridge.LateReply do
  @moduledoc """
  What a reply that comes after its call timed out means, and what to do about it. Pure;
  `OptunaBridge.Study` acts on the answer.

  Why: a call that timed out in the client may still reach the worker and take effect (the
  request was written; the worker was only slow). Its caller was told `:timeout` and will not see
  the reply, so nothing it did may go unsaid:

    * a late `ask` created trials nobody holds: they are released, told `fail` with user attr
      `"optuna_bridge"` = `"ask timed out in the client"`, and an error is kept for `errors/1`;
    * a late `tell`, `report`, `renew` or `add_trials` reply is kept in `errors/1` as `:timeout`
      with `data["applied"]` true (it took effect) or false with the worker's refusal kind in
      `data["error"]`;
    * any other late reply (reads such as `trials`, `best`, `export`; and `enqueue`,
      `set_attrs`, `delete`, `import`, which either took effect or not, see the README) is
      logged at debug level only.

  A call that timed out before it was written (queued while the worker restarted) is never
  written: it never takes effect.
  """

  alias OptunaBridge.Error

  @released "ask timed out in the client"

  @type kind :: term()
  @type outcome :: {:ok, term()} | {:error, Error.t()}

  @doc "What to do with a late reply to a call of this kind."
  @spec classify(String.t(), kind(), outcome()) ::
          {:release, [non_neg_integer()], Error.t()} | {:record, Error.t()} | :ignore
  def classify(study, :ask, {:ok, %{"trials" => trials}}) when trials != [] do
    numbers = Enum.map(trials, & &1["number"])

    error =
      late(
        "ask",
        "an ask of study #{inspect(study)} timed out in the client; the trials it created " <>
          "(#{Enum.join(numbers, ", ")}) were told fail",
        %{"numbers" => numbers, "applied" => true}
      )

    {:release, numbers, error}
  end

  def classify(study, kind, outcome) do
    case method(kind) do
      nil ->
        :ignore

      method ->
        {:record, late(method, message(study, method, kind, outcome), data(kind, outcome))}
    end
  end

  @doc "The `tell` params that release a trial a late ask created."
  @spec release_params(String.t(), non_neg_integer()) :: map()
  def release_params(study, number),
    do: %{
      "study" => study,
      "number" => number,
      "state" => "fail",
      "skip_if_finished" => true,
      "user_attrs" => %{"optuna_bridge" => @released}
    }

  defp method({:tell, _}), do: "tell"
  defp method({:renew, _}), do: "renew"
  defp method(:report), do: "report"
  defp method(:add_trials), do: "add_trials"
  defp method(_), do: nil

  defp message(study, method, kind, {:ok, _}),
    do: "#{what(method, kind)} of study #{inspect(study)} timed out in the client but was applied"

  defp message(study, method, kind, {:error, %Error{} = e}),
    do:
      "#{what(method, kind)} of study #{inspect(study)} timed out in the client; " <>
        "the worker refused it: #{e.kind}: #{e.message}"

  defp what(method, {_, number}), do: "#{method} of trial #{number}"
  defp what(method, _), do: method

  defp data(kind, outcome) do
    base =
      case kind do
        {_, number} -> %{"number" => number}
        _ -> %{}
      end

    case outcome do
      {:ok, _} -> Map.put(base, "applied", true)
      {:error, e} -> Map.merge(base, %{"applied" => false, "error" => Atom.to_string(e.kind)})
    end
  end

  defp late(method, message, data), do: %{Error.client(:timeout, message, data) | method: method}
end
