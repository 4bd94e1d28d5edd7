namespace HsmVault.Server;

/// <summary>
/// The daemon refuses to start because of something on the host the operator must fix (a data
/// folder open to other users, memory locking required but refused). The message says what.
/// </summary>
public sealed class StartupRefusedException : Exception
{
    /// <summary>Creates the exception with the operator-facing reason.</summary>
    public StartupRefusedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the operator-facing reason and its cause.</summary>
    public StartupRefusedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
