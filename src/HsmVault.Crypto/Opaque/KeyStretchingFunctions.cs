using Konscious.Security.Cryptography;

namespace HsmVault.Crypto.Opaque;

/// <summary>Argon2id cost parameters (RFC 9106 section 3.1).</summary>
/// <param name="MemoryKib">Memory size m in KiB.</param>
/// <param name="Iterations">Number of passes t.</param>
/// <param name="Parallelism">Degree of parallelism p (lanes).</param>
public sealed record Argon2idParameters(int MemoryKib, int Iterations, int Parallelism)
{
    /// <summary>RFC 9106 section 4, second recommended option: m = 64 MiB, t = 3, p = 4. The fleet default.</summary>
    public static Argon2idParameters Rfc9106MemoryConstrained { get; } = new(65536, 3, 4);
}

/// <summary>
/// Argon2id (RFC 9106, version 0x13) as OPAQUE's key stretching function (RFC 9807 section 4.3).
/// </summary>
/// <remarks>
/// Fixed choices, which are also what the client proto documents so that every client computes the
/// same value: the salt is 16 zero bytes (the OPRF output is already unique per user and server, so a
/// salt adds nothing; RFC 9807's recommended Argon2id configurations use S = zeroes(16) too), the output is 64
/// bytes (Nh), and there is no secret key K and no associated data X.
/// libsodium's Argon2id only supports p = 1, so this uses Konscious.Security.Cryptography.Argon2,
/// which supports p &gt; 1 and reproduces the RFC 9106 section 5.3 test vector (see the tests).
/// </remarks>
public sealed class Argon2idKsf : IKeyStretchingFunction
{
    private const int SaltSize = 16;
    private const int OutputSize = 64;

    private readonly Argon2idParameters _parameters;

    /// <summary>Creates the KSF with the given cost parameters.</summary>
    public Argon2idKsf(Argon2idParameters p)
    {
        ArgumentNullException.ThrowIfNull(p);

        // RFC 9106 section 3.1: 1 <= p <= 2^24 - 1, m >= 8p KiB, t >= 1.
        if (p.Parallelism is < 1 or > 0xFFFFFF)
        {
            throw new ArgumentOutOfRangeException(nameof(p), "Argon2id parallelism must be between 1 and 2^24-1.");
        }

        if (p.MemoryKib < 8 * p.Parallelism)
        {
            throw new ArgumentOutOfRangeException(nameof(p), "Argon2id memory must be at least 8 KiB per lane.");
        }

        if (p.Iterations < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(p), "Argon2id needs at least one iteration.");
        }

        _parameters = p;
    }

    /// <summary>The cost parameters.</summary>
    public Argon2idParameters Parameters => _parameters;

    /// <inheritdoc />
    public byte[] Stretch(ReadOnlySpan<byte> input) => Compute(input, new byte[SaltSize], null, null, _parameters, OutputSize);

    /// <summary>Full Argon2id with secret and associated data, so the RFC 9106 vector can be checked.</summary>
    internal static byte[] Compute(
        ReadOnlySpan<byte> password, byte[] salt, byte[]? secret, byte[]? associatedData, Argon2idParameters parameters, int outputSize)
    {
        var passwordCopy = password.ToArray();
        try
        {
            using var argon2 = new Argon2id(passwordCopy)
            {
                Salt = salt,
                KnownSecret = secret,
                AssociatedData = associatedData,
                DegreeOfParallelism = parameters.Parallelism,
                Iterations = parameters.Iterations,
                MemorySize = parameters.MemoryKib,
            };
            return argon2.GetBytes(outputSize);
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(passwordCopy);
        }
    }
}

/// <summary>
/// The identity key stretching function: Stretch(x) = x. Only for the RFC 9807 appendix C test vectors;
/// never use it in production, where it would make offline guessing after a server compromise cheap.
/// </summary>
public sealed class IdentityKsf : IKeyStretchingFunction
{
    /// <inheritdoc />
    public byte[] Stretch(ReadOnlySpan<byte> input) => input.ToArray();
}
