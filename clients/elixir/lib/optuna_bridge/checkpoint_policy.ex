defmodule OptunaBridge.CheckpointPolicy do
  @moduledoc """
  When an in-memory study takes its next checkpoint (a full `export` kept by the client to
  rebuild the study on a new worker). Pure: the caller passes the time and acts on the answer
  (`:export`, `{:arm, ms}` for a timer, or `:wait`).

  Why this shape: an export copies the whole study, so its cost grows with the study. Exporting
  after every tell made 1000 trials quadratic (issue 12). A checkpoint is due after `every`
  tells, or `interval` ms after an unsaved tell, whichever comes first; and it never starts
  sooner than `spacing` times the previous export's duration after that export ended, which keeps
  exports to about `1 / (1 + spacing)` of the worker's time however large the study grows.
  `every: 0` and `interval: 0` together mean no checkpoints.
  """

  defstruct every: 100,
            interval: 5_000,
            spacing: 20,
            dirty: 0,
            armed: false,
            next_at: nil,
            sent: 0

  @type t :: %__MODULE__{
          every: non_neg_integer(),
          interval: non_neg_integer(),
          spacing: non_neg_integer(),
          dirty: non_neg_integer(),
          armed: boolean(),
          next_at: integer() | nil,
          sent: non_neg_integer()
        }
  @type action :: :export | {:arm, non_neg_integer()} | :wait

  @doc "A policy from the study's options (`:checkpoint_every`, `_interval`, `_spacing`)."
  @spec new(keyword()) :: t()
  def new(opts) do
    %__MODULE__{
      every: Keyword.get(opts, :checkpoint_every, 100),
      interval: Keyword.get(opts, :checkpoint_interval, 5_000),
      spacing: Keyword.get(opts, :checkpoint_spacing, 20)
    }
  end

  @doc "Whether checkpoints are off (then nothing in memory survives a worker crash)."
  @spec off?(t()) :: boolean()
  def off?(%__MODULE__{every: every, interval: interval}), do: every == 0 and interval == 0

  @doc "A tell was written at time `now` (ms)."
  @spec told(t(), integer()) :: {action(), t()}
  def told(%__MODULE__{} = p, now) do
    p = %{p | dirty: p.dirty + 1}

    cond do
      count_due?(p) and spacing_left(p, now) == 0 -> {:export, p}
      p.armed -> {:wait, p}
      count_due?(p) -> arm(p, spacing_left(p, now))
      p.interval > 0 -> arm(p, max(p.interval, spacing_left(p, now)))
      true -> {:wait, p}
    end
  end

  @doc "The timer armed by an earlier `{:arm, ms}` fired at `now`."
  @spec fired(t(), integer()) :: {action(), t()}
  def fired(%__MODULE__{} = p, now) do
    p = %{p | armed: false}

    cond do
      p.dirty == 0 -> {:wait, p}
      spacing_left(p, now) == 0 -> {:export, p}
      true -> arm(p, spacing_left(p, now))
    end
  end

  @doc "An export was sent: the tells so far are in it."
  @spec exported(t()) :: t()
  def exported(%__MODULE__{} = p), do: %{p | dirty: 0, sent: p.sent + 1}

  @doc "An export sent at `started` was answered at `now`: the next one waits accordingly."
  @spec finished(t(), integer(), integer()) :: t()
  def finished(%__MODULE__{} = p, started, now),
    do: %{p | next_at: now + p.spacing * (now - started)}

  @doc "Nothing unsaved any more (the study was just rebuilt)."
  @spec clean(t()) :: t()
  def clean(%__MODULE__{} = p), do: %{p | dirty: 0}

  @doc "Turns checkpoints off (the worker cannot export)."
  @spec disable(t()) :: t()
  def disable(%__MODULE__{} = p), do: %{p | every: 0, interval: 0}

  defp count_due?(p), do: p.every > 0 and p.dirty >= p.every
  defp spacing_left(%{next_at: nil}, _now), do: 0
  defp spacing_left(p, now), do: max(p.next_at - now, 0)
  defp arm(p, delay), do: {{:arm, delay}, %{p | armed: true}}
end
