namespace HsmVault.Witness;

/// <summary>Why the witness refused a request; the gRPC service maps each to one status code.</summary>
public enum WitnessErrorKind
{
    /// <summary>A field of the wrong size or encoding.</summary>
    InvalidArgument,

    /// <summary>No operator signature, or one no key of the namespace verifies.</summary>
    Unauthenticated,

    /// <summary>An unknown namespace, or nothing logged for what was asked.</summary>
    NotFound,

    /// <summary>A second, different digest for a logged epoch (recorded as an equivocation).</summary>
    Equivocation,

    /// <summary>An epoch not above the namespace's latest logged epoch.</summary>
    EpochNotIncreasing,

    /// <summary>A tree size beyond the log's current size.</summary>
    OutOfRange,
}

/// <summary>A refused witness request; nothing changed, except that an equivocation attempt is recorded.</summary>
public sealed class WitnessException : Exception
{
    /// <summary>Creates the refusal.</summary>
    public WitnessException(WitnessErrorKind kind, string message)
        : base(message) => Kind = kind;

    /// <summary>Creates a refusal without a message; prefer the overload that says what failed.</summary>
    public WitnessException()
    {
    }

    /// <summary>Creates an invalid-argument refusal.</summary>
    public WitnessException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an invalid-argument refusal with its cause.</summary>
    public WitnessException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Why it was refused.</summary>
    public WitnessErrorKind Kind { get; }
}
