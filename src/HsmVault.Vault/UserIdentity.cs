using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace HsmVault.Vault;

/// <summary>
/// Who a request is for: the tenant (the JWT issuer) and the user within it (the JWT subject).
/// Never taken from a request body. Two identities are equal when both parts are equal, ordinal.
/// </summary>
/// <remarks>
/// The parts are checked once, where an identity enters: <see cref="TryCreate"/> at the edges
/// (the caller's token, a replicated command, a snapshot), each mapping a refusal to its own
/// error; the constructor, for identities that are already known to be good (this member's own
/// database, tests), throws <see cref="ArgumentException"/> on a bad part.
/// </remarks>
public sealed class UserIdentity : IEquatable<UserIdentity>
{
    /// <summary>Longest tenant or user id accepted, in UTF-8 bytes.</summary>
    public const int MaxPartBytes = 256;

    private readonly byte[] _encoded;

    /// <summary>Creates an identity from parts known to be valid.</summary>
    /// <exception cref="ArgumentException">A part is empty, longer than <see cref="MaxPartBytes"/> or holds a control character.</exception>
    public UserIdentity(string tenant, string userId)
    {
        if (Problem(tenant, userId) is { } problem)
        {
            throw new ArgumentException(problem);
        }

        Tenant = tenant;
        UserId = userId;
        _encoded = Encode(tenant, userId);
    }

    /// <summary>The tenant: the issuer of the caller's token.</summary>
    public string Tenant { get; }

    /// <summary>The user within the tenant: the subject of the caller's token.</summary>
    public string UserId { get; }

    /// <summary>
    /// The identity's one binary encoding: <c>u16 len || tenant || u16 len || user id</c>
    /// (UTF-8, big-endian lengths). Length-prefixed, so no two identities share one and a tenant
    /// cannot reach another tenant's users; it is what OPAQUE's credential identifier, sealed
    /// records, registration tickets and log pseudonyms are bound to.
    /// </summary>
    public ReadOnlySpan<byte> Encoded => _encoded;

    /// <summary>An identity from untrusted parts, or why they are not one.</summary>
    /// <param name="tenant">The tenant, as the caller's token or a peer's bytes name it.</param>
    /// <param name="userId">The user id, likewise.</param>
    /// <param name="identity">The identity; null on failure.</param>
    /// <param name="problem">Says which part is wrong and how, for the caller to read; null on success.</param>
    public static bool TryCreate(string? tenant, string? userId,
        [NotNullWhen(true)] out UserIdentity? identity, [NotNullWhen(false)] out string? problem)
    {
        problem = Problem(tenant, userId);
        identity = problem is null ? new UserIdentity(tenant!, userId!) : null;
        return identity is not null;
    }

    /// <summary>Length of the random nonce that gives each registration its own OPRF key.</summary>
    public const int RegistrationNonceBytes = 16;

    /// <summary>
    /// OPAQUE's credential_identifier (RFC 9807 section 6.1) for one registration: the
    /// identity's encoding, a tag, then that registration's random nonce. The nonce gives every
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

        return [.. _encoded, RealRecordTag, .. registrationNonce];
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
    /// identity's encoding (<see cref="Encoded"/>). The same user always
    /// gets the same pseudonym, so events can be correlated, and an operator who knows a user id
    /// can compute it; the log itself does not name anyone.
    /// </summary>
    public string Pseudonym() => "u:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(_encoded).AsSpan(0, 8));

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

    /// <inheritdoc/>
    public bool Equals(UserIdentity? other) =>
        other is not null && string.Equals(Tenant, other.Tenant, StringComparison.Ordinal) && string.Equals(UserId, other.UserId, StringComparison.Ordinal);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as UserIdentity);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(StringComparer.Ordinal.GetHashCode(Tenant), StringComparer.Ordinal.GetHashCode(UserId));

    /// <summary>Whether two identities are equal.</summary>
    public static bool operator ==(UserIdentity? left, UserIdentity? right) => left is null ? right is null : left.Equals(right);

    /// <summary>Whether two identities differ.</summary>
    public static bool operator !=(UserIdentity? left, UserIdentity? right) => !(left == right);

    private static string? Problem(string? tenant, string? userId) => PartProblem(tenant, "tenant") ?? PartProblem(userId, "user id");

    private static string? PartProblem(string? value, string name)
    {
        if (string.IsNullOrEmpty(value))
        {
            return $"the {name} is empty";
        }

        if (Encoding.UTF8.GetByteCount(value) > MaxPartBytes)
        {
            return $"the {name} is longer than {MaxPartBytes} bytes of UTF-8";
        }

        return value.Any(char.IsControl) ? $"the {name} contains control characters" : null;
    }

    private static byte[] Encode(string tenant, string userId)
    {
        var tenantLength = Encoding.UTF8.GetByteCount(tenant);
        var userLength = Encoding.UTF8.GetByteCount(userId);
        var result = new byte[2 + tenantLength + 2 + userLength];
        BinaryPrimitives.WriteUInt16BigEndian(result, (ushort)tenantLength);
        Encoding.UTF8.GetBytes(tenant, result.AsSpan(2));
        BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(2 + tenantLength), (ushort)userLength);
        Encoding.UTF8.GetBytes(userId, result.AsSpan(4 + tenantLength));
        return result;
    }
}
