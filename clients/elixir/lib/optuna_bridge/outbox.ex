defmodule OptunaBridge.Outbox do
  @moduledoc """
  The ledger of frames written to the worker and not yet known to be processed, in write order.
  Pure data; `OptunaBridge.Study` keeps one per worker.

  Why: the worker answers frames strictly in order, but a successful notification (`tell_async/4`) is
  answered by nothing, a failed one by an `error` notification, and a frame the worker cannot
  read (too large, not JSON) by an error whose `id` is `null`. Knowing every written frame in
  order lets the client attribute each of these to the frame that caused it, never to an
  unrelated pending request, and tell which notifications a crashed worker may not have read.

    * a reply to request `id` settles every frame written before it (`reply/2`);
    * an `error` notification for `method` belongs to the oldest unsettled notification of that
      method (`notification_error/2`);
    * an id-`null` error belongs to the oldest unsettled frame over the worker's
      `max_frame_bytes` when it is `frame_too_large`; otherwise to the oldest unsettled
      notification written before the oldest pending request, else to that request
      (`null_error/3`). This client never writes a frame over the announced limit and always
      writes valid JSON, so in practice such errors come from `request/4` frames or old workers.

  At most `#{100_000}` notifications are kept: with no request in between (casts only), the
  oldest are assumed processed.
  """

  @max_entries 100_000

  @type entry ::
          {:request, seq :: non_neg_integer(), id :: integer(), bytes :: non_neg_integer()}
          | {:notification, seq :: non_neg_integer(), method :: String.t(), meta :: term(),
             bytes :: non_neg_integer()}
  @type t :: %__MODULE__{entries: :queue.queue(entry()), size: non_neg_integer()}

  defstruct entries: :queue.new(), size: 0

  @doc "An empty ledger."
  @spec new() :: t()
  def new, do: %__MODULE__{}

  @doc "Records a written frame."
  @spec push(t(), entry()) :: t()
  def push(%__MODULE__{entries: q, size: n} = box, entry) do
    box = %{box | entries: :queue.in(entry, q), size: n + 1}
    if box.size > @max_entries, do: drop_oldest(box), else: box
  end

  defp drop_oldest(%__MODULE__{entries: q, size: n} = box) do
    {_, q} = :queue.out(q)
    %{box | entries: q, size: n - 1}
  end

  @doc """
  A reply to request `id` arrived: returns the notifications it settles (written before it, so
  processed) and the ledger without them and without the request.
  """
  @spec reply(t(), integer() | String.t()) :: {[entry()], t()}
  def reply(%__MODULE__{} = box, id) do
    list = :queue.to_list(box.entries)

    case Enum.split_while(list, &(not match?({:request, _, ^id, _}, &1))) do
      {_, []} ->
        {[], box}

      {before, [_request | rest]} ->
        {Enum.filter(before, &match?({:notification, _, _, _, _}, &1)), from_list(rest)}
    end
  end

  @doc """
  An `error` notification for `method` arrived: the notification it belongs to (or nil), and the
  ledger without it and without the frames before it.
  """
  @spec notification_error(t(), String.t()) :: {entry() | nil, t()}
  def notification_error(%__MODULE__{} = box, method) do
    list = :queue.to_list(box.entries)

    case Enum.split_while(list, &(not match?({:notification, _, ^method, _, _}, &1))) do
      {_, []} -> {nil, box}
      {before, [entry | rest]} -> {entry, from_list(keep_requests(before) ++ rest)}
    end
  end

  @doc """
  An error with a null `id` arrived: the frame it belongs to (see the module doc) or nil, and
  the ledger without it.
  """
  @spec null_error(t(), atom(), pos_integer() | nil) :: {entry() | nil, t()}
  def null_error(%__MODULE__{} = box, kind, max_frame_bytes) do
    list = :queue.to_list(box.entries)
    target = culprit(list, kind, max_frame_bytes)
    {target, if(target, do: from_list(List.delete(list, target)), else: box)}
  end

  defp culprit(list, :frame_too_large, max) when is_integer(max) do
    Enum.find(list, &(bytes(&1) > max)) || culprit(list, nil, nil)
  end

  defp culprit(list, _kind, _max) do
    {notifications, rest} = Enum.split_while(list, &match?({:notification, _, _, _, _}, &1))

    case {notifications, rest} do
      {[first | _], _} -> first
      {[], [request | _]} -> request
      {[], []} -> nil
    end
  end

  @doc "Every frame not yet known to be processed, oldest first."
  @spec unsettled(t()) :: [entry()]
  def unsettled(%__MODULE__{entries: q}), do: :queue.to_list(q)

  defp bytes({:request, _, _, bytes}), do: bytes
  defp bytes({:notification, _, _, _, bytes}), do: bytes

  defp keep_requests(list), do: Enum.filter(list, &match?({:request, _, _, _}, &1))

  defp from_list(list), do: %__MODULE__{entries: :queue.from_list(list), size: length(list)}
end
