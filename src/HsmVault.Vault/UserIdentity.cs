using System.Buffers.Binary;
using System.Text;

namespace HsmVault.Vault;

/// <summary>
/// Who a request is for: the tenant (the JWT issuer) and the user within it (the JWT subject).
/// Never taken from a request body.
/// </summary>
public sealed record UserIdentity
{
    /// <summary>Longest tenant or user id accepted, in UTF-8 bytes.</summary>
    public const int MaxPartBytes = 256;

    /// <summary>Creates an identity, validating both parts.</summary>
    public UserIdentity(string tenant, string userId)
    {
        Tenant = Validate(tenant, nameof(tenant));
        UserId = Validate(userId, nameof(userId));
    }

    /// <summary>The tenant: the issuer of the caller's token.</summary>
    public string Tenant { get; }

    /// <summary>The user within the tenant: the subject of the caller's token.</summary>
    public string UserId { get; }

    /// <summary>Length of the random nonce that gives each registration its own OPRF key.</summary>
    public const int RegistrationNonceBytes = 16;

    /// <summary>
    /// OPAQUE's credential_identifier (RFC 9807 section 6.1) for one registration: both parts
    /// length-prefixed (so no two identities share one and a tenant cannot reach another
    /// tenant's users), then that registration's random nonce. The nonce gives every
    /// registration its own OPRF key, so StartRegistration, which costs no guess, can never
    /// evaluate the OPRF under the key a live record uses: otherwise anyone holding the user's
    /// JWT could collect evaluations for a whole dictionary and test it offline after spending
    /// a single guess.
    /// </summary>
    public byte[] CredentialIdentifier(ReadOnlySpan<byte> registrationNonce)
    {
        if (registrationNonce.Length != RegistrationNonceBytes)
        {
            throw new ArgumentException($"a registration nonce is {RegistrationNonceBytes} bytes", nameof(registrationNonce));
        }

        return [.. IdentityPrefix(), RealRecordTag, .. registrationNonce];
    }

    /// <summary>The length-prefixed tenant and user id, which also bind sealed records to this user.</summary>
    public byte[] IdentityPrefix()
    {
        var tenant = Encoding.UTF8.GetBytes(Tenant);
        var user = Encoding.UTF8.GetBytes(UserId);
        var result = new byte[2 + tenant.Length + 2 + user.Length];
        BinaryPrimitives.WriteUInt16BigEndian(result, (ushort)tenant.Length);
        tenant.CopyTo(result, 2);
        BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(2 + tenant.Length), (ushort)user.Length);
        user.CopyTo(result, 4 + tenant.Length);
        return result;
    }

    /// <summary>
    /// Tags the identifier of a real registration. 0 was the fake record's, answered to unknown
    /// users until they were refused outright; it stays unused so no old identifier can recur.
    /// </summary>
    private const byte RealRecordTag = 1;

    /// <summary>
    /// The identity as it may appear in logs, exception messages and status messages:
    /// <c>tenant/user</c> with every character outside printable ASCII, and every quote and
    /// backslash, written as <c>\uXXXX</c>, so a subject cannot fake a log line, hide behind
    /// a right-to-left override or smuggle in invisible characters.
    /// </summary>
    public override string ToString() => $"{Escape(Tenant)}/{Escape(UserId)}";

    /// <summary>
    /// A pseudonym for logs: <c>u:</c> and the first 16 hex digits of SHA-256 over the
    /// length-prefixed tenant and user id (<see cref="IdentityPrefix"/>). The same user always
    /// gets the same pseudonym, so events can be correlated, and an operator who knows a user id
    /// can compute it; the log itself does not name anyone.
    /// </summary>
    public string Pseudonym() => "u:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(IdentityPrefix()).AsSpan(0, 8));

    /// <summary>How this identity is written into logs under <paramref name="form"/>.</summary>
    public string ForLog(UserLogForm form) => form == UserLogForm.Escaped ? ToString() : Pseudonym();

    private static string Escape(string value)
    {
        if (value.All(c => c is >= ' ' and <= '~' and not '"' and not '\\'))
        {
            return value;
        }

        var escaped = new StringBuilder(value.Length * 2);
        foreach (var c in value)
        {
            if (c is >= ' ' and <= '~' and not '"' and not '\\')
            {
                escaped.Append(c);
            }
            else
            {
                escaped.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            }
        }

        return escaped.ToString();
    }

    private static string Validate(string value, string name)
    {
        if (string.IsNullOrEmpty(value))
        {
            throw new VaultException(VaultError.InvalidArgument, $"the caller's {name} is empty");
        }

        if (Encoding.UTF8.GetByteCount(value) > MaxPartBytes)
        {
            throw new VaultException(VaultError.InvalidArgument, $"the caller's {name} is longer than {MaxPartBytes} bytes");
        }

        if (value.Any(char.IsControl))
        {
            throw new VaultException(VaultError.InvalidArgument, $"the caller's {name} contains control characters");
        }

        return value;
    }
}
