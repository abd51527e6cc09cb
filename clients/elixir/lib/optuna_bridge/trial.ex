defmodule OptunaBridge.Trial do
  @moduledoc """
  A trial as the worker reports it (`best`, `trials`, `tell`, `OptunaBridge.optimize/3`).

    * `number` — the study-scoped trial number (0, 1, 2, ...), as in Optuna.
    * `state` — `:running | :waiting | :complete | :pruned | :fail`.
    * `params` — `%{"name" => value}`: keys are the parameter names **as strings**, exactly as
      written in the search space (`lr:` becomes `"lr"`). Strings because parameter names are
      user data: atoms are never created from what the worker sends.
    * `values` — the objective values (a list, one per direction), or `nil`.
    * `user_attrs` — `%{"key" => json_value}`.
    * `intermediate_values` — `%{step => value}` with integer steps (from `report/4`).
    * `datetime_start`, `datetime_complete` — ISO 8601 strings, only when asked with
      `datetimes: true` (else `nil`).
    * `lease_end` — ISO 8601 (UTC, `Z`) end of the trial's lease, on trials asked with `lease_s:`
      while they run (`ask`, `trials`, `best`); `nil` otherwise. `OptunaBridge.Study.renew/3`
      extends it; past it the worker fails the trial.
    * A field the worker did not send is `nil` (the `tell` reply has only `number`, `state` and
      `values`).
    * `extra` — fields a newer worker sends that this client does not know yet (string keys).

    * `study` — the study process the trial belongs to, set on the trials `OptunaBridge.optimize/3`
      hands to the objective (so `OptunaBridge.report/3` needs nothing else); `nil` otherwise.

  It implements `Access`: `trial[:params]` and `trial["a_new_field"]` (looked up in `extra`).
  """

  @behaviour Access

  @type state :: :running | :waiting | :complete | :pruned | :fail

  @type t :: %__MODULE__{
          number: non_neg_integer(),
          state: state() | String.t() | nil,
          params: %{optional(String.t()) => term()} | nil,
          values: [number()] | nil,
          user_attrs: map() | nil,
          intermediate_values: %{optional(integer()) => number()} | nil,
          datetime_start: String.t() | nil,
          datetime_complete: String.t() | nil,
          lease_end: String.t() | nil,
          extra: map(),
          study: GenServer.server() | nil
        }

  @enforce_keys [:number]
  defstruct number: nil,
            state: nil,
            params: nil,
            values: nil,
            user_attrs: nil,
            intermediate_values: nil,
            datetime_start: nil,
            datetime_complete: nil,
            lease_end: nil,
            extra: %{},
            study: nil

  @doc "The first objective value (`nil` when there is none)."
  @spec value(t()) :: number() | nil
  def value(%__MODULE__{values: [v | _]}), do: v
  def value(%__MODULE__{}), do: nil

  @impl Access
  def fetch(%__MODULE__{} = trial, key) when is_atom(key) and key not in [:extra, :study] do
    if Map.has_key?(trial, key) and key != :__struct__,
      do: {:ok, Map.get(trial, key)},
      else: :error
  end

  def fetch(%__MODULE__{extra: extra}, key), do: Map.fetch(extra, key)

  @impl Access
  def get_and_update(%__MODULE__{} = trial, key, fun) do
    current = get(trial, key)

    case fun.(current) do
      {old, new} -> {old, put(trial, key, new)}
      :pop -> {current, put(trial, key, nil)}
    end
  end

  @impl Access
  def pop(%__MODULE__{} = trial, key), do: {get(trial, key), put(trial, key, nil)}

  defp get(trial, key) do
    case fetch(trial, key) do
      {:ok, v} -> v
      :error -> nil
    end
  end

  defp put(trial, key, value) when is_atom(key) and key not in [:extra, :__struct__],
    do: Map.replace!(trial, key, value)

  defp put(%__MODULE__{extra: extra} = trial, key, value),
    do: %{trial | extra: Map.put(extra, key, value)}
end
