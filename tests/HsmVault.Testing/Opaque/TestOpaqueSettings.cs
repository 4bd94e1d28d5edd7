using System.Globalization;
using System.Text;
using HsmVault.Crypto.Opaque;

namespace HsmVault.Testing.Opaque;

/// <summary>
/// The OPAQUE configuration of every test daemon and fleet, in the daemon's configuration keys
/// and as the client side's <see cref="OpaqueConfiguration"/>, so that hand-made messages match
/// what the daemon expects.
/// </summary>
public static class TestOpaqueSettings
{
    /// <summary>A non-empty context, as an operator may choose (the fleet default is empty).</summary>
    public const string Context = "HsmVault-v1";

    /// <summary>Cheap Argon2id, so that clients are fast; p = 2 keeps the KSF's parallel path in use.</summary>
    public static Argon2idParameters Argon2 { get; } = new(MemoryKib: 1024, Iterations: 1, Parallelism: 2);

    /// <summary>The client side's configuration for a test daemon.</summary>
    public static OpaqueConfiguration Configuration { get; } = new(Encoding.UTF8.GetBytes(Context), new Argon2idKsf(Argon2));

    /// <summary>Sets the daemon's OPAQUE keys (context and Argon2id) in <paramref name="settings"/> (flat configuration keys).</summary>
    public static void AddTo(IDictionary<string, string?> settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings["HsmVault:OpaqueContext"] = Context;
        settings["HsmVault:Argon2MemoryKib"] = Argon2.MemoryKib.ToString(CultureInfo.InvariantCulture);
        settings["HsmVault:Argon2Iterations"] = Argon2.Iterations.ToString(CultureInfo.InvariantCulture);
        settings["HsmVault:Argon2Parallelism"] = Argon2.Parallelism.ToString(CultureInfo.InvariantCulture);
    }
}
