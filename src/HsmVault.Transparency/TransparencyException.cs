namespace HsmVault.Transparency;

/// <summary>
/// Something a witness, a log or a proof said does not check out: a proof that does not verify,
/// a note that does not parse or is not signed by the expected key, a log whose replay fails.
/// The message names what failed, for a person to act on.
/// </summary>
public sealed class TransparencyException : Exception
{
    /// <summary>Creates the exception with a message naming what failed.</summary>
    public TransparencyException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message naming what failed and its cause.</summary>
    public TransparencyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception without a message; prefer the overloads that say what failed.</summary>
    public TransparencyException()
    {
    }
}
