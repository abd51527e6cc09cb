defmodule OptunaBridge.Wire do
  @moduledoc """
  Translation between the shapes an Elixir caller writes and the protocol's params and results.

  Callers write study configs and search spaces with atom keys and keyword lists
  (`%{lr: [type: "float", low: 1.0e-5, high: 0.1, log: true]}`); the wire wants JSON objects.
  Results come back with string keys; trials are returned with atom keys for the protocol's
  known fields (a fixed table, never `String.to_atom/1`) and their parameters keyed by name
  strings, as the user named them.
  """

  alias OptunaBridge.JSON

  @type trial :: %{
          required(:number) => non_neg_integer(),
          optional(:state) => atom() | String.t(),
          optional(:params) => map(),
          optional(:values) => [number()] | nil,
          optional(:user_attrs) => map(),
          optional(:intermediate_values) => %{integer() => number()},
          optional(atom() | String.t()) => term()
        }

  @trial_fields %{
    "number" => :number,
    "state" => :state,
    "params" => :params,
    "values" => :values,
    "user_attrs" => :user_attrs,
    "intermediate_values" => :intermediate_values,
    "datetime_start" => :datetime_start,
    "datetime_complete" => :datetime_complete
  }

  @states %{
    "running" => :running,
    "waiting" => :waiting,
    "complete" => :complete,
    "pruned" => :pruned,
    "fail" => :fail
  }

  @doc """
  The `create` params for a study config and a search space. `name` becomes `study`; every other
  key (`direction`, `directions`, `sampler`, `pruner`, `load_if_exists`, `user_attrs`) is passed
  on as it is, so the worker's validation (which rejects unknown fields) applies.

      iex> OptunaBridge.Wire.create_params(%{name: "s", direction: "maximize"},
      ...>   %{x: [type: "float", low: 0, high: 1]})
      %{"study" => "s", "direction" => "maximize",
        "search_space" => %{"x" => %{"type" => "float", "low" => 0, "high" => 1}}}
  """
  @spec create_params(map() | keyword(), map() | keyword()) :: map()
  def create_params(study_config, search_space) do
    config = object(study_config)
    {name, config} = Map.pop(config, "name")

    config
    |> Map.put("study", name)
    |> Map.put("search_space", search_space(search_space))
  end

  @doc """
  A search space as the wire's `{name: distribution}` object. A keyword list keeps its order
  (a seeded sampler draws parameters in search-space order); a map is sent in map order.
  """
  @spec search_space(map() | keyword()) :: map() | JSON.Ordered.t()
  def search_space(space) when is_list(space),
    do: %JSON.Ordered{
      pairs: Enum.map(space, fn {name, dist} -> {to_string(name), object(dist)} end)
    }

  def search_space(space) when is_map(space),
    do: Map.new(space, fn {name, dist} -> {to_string(name), object(dist)} end)

  @doc "A map or keyword list as a JSON object with string keys (one level)."
  @spec object(map() | keyword()) :: map()
  def object(kv) when is_map(kv) or is_list(kv),
    do: Map.new(kv, fn {k, v} -> {to_string(k), v} end)

  @doc "`tell` params: a number is `value`, a list `values`, `nil` neither (pruned/fail)."
  @spec tell_params(String.t(), non_neg_integer(), number() | [number()] | nil, keyword()) ::
          map()
  def tell_params(study, number, value, opts) do
    base = %{"study" => study, "number" => number}

    base =
      cond do
        is_list(value) -> Map.put(base, "values", value)
        is_number(value) -> Map.put(base, "value", value)
        is_nil(value) -> base
      end

    opts
    |> Keyword.take([:state, :user_attrs, :skip_if_finished])
    |> Enum.reduce(base, fn {k, v}, acc -> Map.put(acc, Atom.to_string(k), v) end)
  end

  @doc "An asked trial: `%{number: 0, params: %{\"lr\" => 0.01}}`."
  @spec asked(map()) :: %{number: non_neg_integer(), params: map()}
  def asked(%{"number" => number, "params" => params}), do: %{number: number, params: params}

  @doc "A trial object from `best`/`trials`, with atom keys for the known fields."
  @spec trial(map()) :: trial()
  def trial(wire) when is_map(wire) do
    Map.new(wire, fn {k, v} ->
      key = Map.get(@trial_fields, k, k)
      {key, field(key, v)}
    end)
  end

  defp field(:state, state), do: Map.get(@states, state, state)

  defp field(:intermediate_values, values) when is_map(values) do
    Map.new(values, fn {step, v} ->
      case Integer.parse(step) do
        {int, ""} -> {int, v}
        _ -> {step, v}
      end
    end)
  end

  defp field(_key, v), do: v
end
