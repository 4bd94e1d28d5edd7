namespace HsmVault.Crypto.Opaque;

/// <summary>
/// The OPAQUE-3DH configuration both sides must agree on (RFC 9807 section 7): the suite is fixed to
/// ristretto255-SHA512 with HKDF-SHA512 and HMAC-SHA512; the application context and the key
/// stretching function are configurable.
/// </summary>
public sealed class OpaqueConfiguration
{
    private readonly byte[] _context;

    /// <summary>Creates a configuration.</summary>
    /// <param name="context">RFC 9807 section 6.1 context: bound into every handshake's preamble. At most 65535 bytes.</param>
    /// <param name="ksf">The key stretching function applied to the OPRF output.</param>
    public OpaqueConfiguration(ReadOnlySpan<byte> context, IKeyStretchingFunction ksf)
    {
        ArgumentNullException.ThrowIfNull(ksf);
        if (context.Length > ushort.MaxValue)
        {
            // The preamble encodes len(context) in two bytes (RFC 9807 section 6.4.2).
            throw new ArgumentException("The OPAQUE context must be at most 65535 bytes.", nameof(context));
        }

        _context = context.ToArray();
        Ksf = ksf;
    }

    /// <summary>The application context string (bytes, not text).</summary>
    public ReadOnlyMemory<byte> Context => _context;

    /// <summary>The key stretching function.</summary>
    public IKeyStretchingFunction Ksf { get; }
}
