defmodule OptunaBridge.ClientId do
  @moduledoc """
  The client id a study passes with each `ask` (the worker's `client`, OSS Vizier's
  `client_id`): trials this client started and never told (because the BEAM restarted) are
  handed out again first, with `trial.extra["resumed"] == true`, instead of staying RUNNING.

  Default: `"<study name>@<node>"`, stable across restarts of a named node. Two study processes of
  the same study on one node must each get their own `client:` start option; `client: false`
  sends none. Pure functions; `OptunaBridge.Study` calls them.
  """

  alias OptunaBridge.JSON

  @doc """
  The default id of a study on this node.

      iex> OptunaBridge.ClientId.default("mnist") == "mnist@" <> Atom.to_string(node())
      true
  """
  @spec default(String.t()) :: String.t()
  def default(study) do
    id = study <> "@" <> Atom.to_string(node())
    if byte_size(id) <= 128, do: id, else: binary_part(id, byte_size(id) - 128, 128)
  end

  @doc "The id as JSON, or nil for `false` (no client id)."
  @spec json(String.t() | false | nil) :: String.t() | nil
  def json(false), do: nil
  def json(nil), do: nil
  def json(id) when is_binary(id), do: JSON.encode!(id)

  @doc """
  Ask params (JSON text) with the client id added (unless there is none, or they name one).

      iex> OptunaBridge.ClientId.with_client(~s({"n":1}), ~s("a@b"))
      ~s({"client":"a@b","n":1})
      iex> OptunaBridge.ClientId.with_client("{}", nil)
      "{}"
  """
  @spec with_client(String.t(), String.t() | nil) :: String.t()
  def with_client(json, nil), do: json
  def with_client("{}", client), do: ~s({"client":) <> client <> "}"

  def with_client("{" <> rest = json, client) do
    if String.contains?(json, ~s("client":)),
      do: json,
      else: ~s({"client":) <> client <> "," <> rest
  end

  @doc """
  Drops resumed trials this study process still holds (handed out and not told): after a worker
  crash the new worker hands the client's running trials out again, but here they are still
  being evaluated.
  """
  @spec not_held([OptunaBridge.Trial.t()], map()) :: [OptunaBridge.Trial.t()]
  def not_held(trials, held) when map_size(held) == 0, do: trials

  def not_held(trials, held),
    do: Enum.reject(trials, &(&1.extra["resumed"] == true and Map.has_key?(held, &1.number)))
end
