using System.Security.Cryptography;
using System.Text;

namespace HsmVault.Hsm.Internal;

/// <summary>
/// The user PIN as bytes in a pinned array, so the GC never leaves copies behind; wiped on
/// <see cref="Dispose"/>. Kept for the life of a token because re-login after a lost session
/// needs it.
/// </summary>
internal sealed class Pin : IDisposable
{
    private readonly byte[] _value;
    private bool _disposed;

    private Pin(byte[] pinnedValue) => _value = pinnedValue;

    /// <summary>The PIN bytes. Do not copy them anywhere that outlives the call.</summary>
    public byte[] Value
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _value;
        }
    }

    /// <summary>Reads the PIN from <see cref="TokenOptions.PinFile"/> or <see cref="TokenOptions.PinEnvironmentVariable"/>.</summary>
    /// <exception cref="TokenConfigurationException">Neither is set, the file cannot be read, or the PIN is empty.</exception>
    public static Pin Load(TokenOptions options)
    {
        if (!string.IsNullOrWhiteSpace(options.PinFile))
        {
            byte[] raw;
            try
            {
                raw = File.ReadAllBytes(options.PinFile);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new TokenConfigurationException($"cannot read the token PIN file '{options.PinFile}': {ex.Message}", ex);
            }

            try
            {
                return FromFirstLine(raw, $"PIN file '{options.PinFile}'");
            }
            finally
            {
                CryptographicOperations.ZeroMemory(raw);
            }
        }

        if (!string.IsNullOrWhiteSpace(options.PinEnvironmentVariable))
        {
            // The environment hands out a string; it is the caller's choice of PIN source.
            var text = Environment.GetEnvironmentVariable(options.PinEnvironmentVariable);
            if (string.IsNullOrEmpty(text))
            {
                throw new TokenConfigurationException(
                    $"environment variable '{options.PinEnvironmentVariable}' (HsmVault:Token:PinEnvironmentVariable) is not set or empty");
            }

            var raw = Encoding.UTF8.GetBytes(text);
            try
            {
                return FromFirstLine(raw, $"environment variable '{options.PinEnvironmentVariable}'");
            }
            finally
            {
                CryptographicOperations.ZeroMemory(raw);
            }
        }

        throw new TokenConfigurationException(
            "no token PIN configured: set HsmVault:Token:PinFile to a file holding the user PIN (mode 0600), " +
            "or HsmVault:Token:PinEnvironmentVariable to the name of an environment variable holding it");
    }

    /// <summary>Copies the first line of <paramref name="raw"/>, trimmed of ASCII whitespace, into pinned memory.</summary>
    public static Pin FromFirstLine(ReadOnlySpan<byte> raw, string source)
    {
        var newline = raw.IndexOfAny((byte)'\n', (byte)'\r');
        var line = newline >= 0 ? raw[..newline] : raw;
        line = line.Trim(" \t\v\f"u8);
        if (line.IsEmpty)
        {
            throw new TokenConfigurationException($"the token PIN from {source} is empty");
        }

        var pinned = GC.AllocateArray<byte>(line.Length, pinned: true);
        line.CopyTo(pinned);
        return new Pin(pinned);
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            CryptographicOperations.ZeroMemory(_value);
            _disposed = true;
        }
    }
}
