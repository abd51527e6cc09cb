defmodule OptunaBridge.RPC do
  @moduledoc """
  JSON-RPC 2.0 frames as data: building requests and notifications, and sorting what the worker
  writes into replies and notifications. Pure functions; `OptunaBridge.Study` does the I/O and
  the bookkeeping of request ids.
  """

  alias OptunaBridge.{Error, JSON}

  @type id :: integer() | String.t()
  @type incoming ::
          {:reply, id(), {:ok, JSON.value()} | {:error, Error.t()}}
          | {:unattributed_error, Error.t()}
          | {:notification, String.t(), JSON.value() | Error.t()}
          | {:invalid, term()}

  @doc "A request frame (a reply is expected)."
  @spec request(id(), String.t(), map()) :: map()
  def request(id, method, params), do: %{jsonrpc: "2.0", id: id, method: method, params: params}

  @doc "A notification frame: no `id`, no reply unless it fails."
  @spec notification(String.t(), map()) :: map()
  def notification(method, params), do: %{jsonrpc: "2.0", method: method, params: params}

  @doc """
  Sorts one decoded frame from the worker.

  An error whose `id` is `null` (the worker could not read the frame: too large, not JSON) is
  `{:unattributed_error, error}`; since replies come in request order, the caller may attribute
  it to its oldest pending request.
  """
  @spec classify(JSON.value()) :: incoming()
  def classify(%{"id" => id, "result" => result}) when is_integer(id) or is_binary(id),
    do: {:reply, id, {:ok, result}}

  def classify(%{"id" => id, "error" => error})
      when (is_integer(id) or is_binary(id)) and is_map(error),
      do: {:reply, id, {:error, Error.from_wire(error)}}

  def classify(%{"id" => nil, "error" => error}) when is_map(error),
    do: {:unattributed_error, Error.from_wire(error)}

  def classify(%{"method" => "error", "params" => %{"method" => method, "error" => error}})
      when is_map(error),
      do: {:notification, "error", Error.from_wire(error, method)}

  def classify(%{"method" => method} = frame)
      when is_binary(method) and not is_map_key(frame, "id"),
      do: {:notification, method, Map.get(frame, "params")}

  def classify(other), do: {:invalid, other}
end
