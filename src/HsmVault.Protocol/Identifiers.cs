namespace HsmVault.Protocol;

/// <summary>The form of fleet and member ids, wherever one is configured or sent: 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'.</summary>
public static class Identifiers
{
    /// <summary>Longest id.</summary>
    public const int MaxLength = 64;

    /// <summary>Whether <paramref name="value"/> is a well-formed fleet or member id.</summary>
    public static bool IsValid(string? value) =>
        !string.IsNullOrEmpty(value) && value.Length <= MaxLength && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
}
