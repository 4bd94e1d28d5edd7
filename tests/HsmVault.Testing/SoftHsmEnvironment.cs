using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using HsmVault.Hsm;
using HsmVault.Hsm.Internal;

namespace HsmVault.Testing;

/// <summary>
/// SoftHSM2 tokens for tests, all in one temporary folder per test process.
/// </summary>
/// <remarks>
/// SoftHSM2 reads <c>SOFTHSM2_CONF</c> once, at C_Initialize, and HsmVault loads a module once
/// per process, so every token a test process uses lives in the one folder this class owns.
/// Touch <see cref="Shared"/> before anything loads the SoftHSM2 module: it sets
/// <c>SOFTHSM2_CONF</c> for the process (installing softhsm2 with apt-get if it is missing).
/// <code>
/// var options = SoftHsmEnvironment.Shared.CreateProvisionedToken("member-1");
/// using var token = Pkcs11VaultToken.Open(options);
/// </code>
/// Daemons run as child processes can use the same tokens: start them with
/// <c>SOFTHSM2_CONF=</c><see cref="ConfigPath"/> (see <see cref="ChildProcessEnvironment"/>) and the
/// returned <see cref="TokenOptions"/>; dispose the test process's own handles on a token first.
/// For a daemon with a token folder of its own, see <see cref="WriteConfig"/>.
/// </remarks>
public sealed class SoftHsmEnvironment
{
    /// <summary>Where Debian's softhsm2 package puts the module.</summary>
    public const string DefaultModulePath = "/usr/lib/softhsm/libsofthsm2.so";

    private static readonly Lazy<SoftHsmEnvironment> SharedInstance = new(() => new SoftHsmEnvironment(), LazyThreadSafetyMode.ExecutionAndPublication);
    private int _counter;

    private SoftHsmEnvironment()
    {
        EnsureSoftHsmInstalled();
        if (Pkcs11Modules.IsLoaded(DefaultModulePath))
        {
            throw new InvalidOperationException(
                "the SoftHSM2 module was loaded before SoftHsmEnvironment.Shared was first used, so its SOFTHSM2_CONF is not ours; " +
                "touch SoftHsmEnvironment.Shared before opening any token");
        }

        RootDirectory = Directory.CreateTempSubdirectory("hsmvault-softhsm-").FullName;
        TokenDirectory = Path.Combine(RootDirectory, "tokens");
        ConfigPath = WriteConfig(RootDirectory, TokenDirectory);
        NativeEnvironment.Set("SOFTHSM2_CONF", ConfigPath);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(RootDirectory);
    }

    /// <summary>The one environment of this test process.</summary>
    public static SoftHsmEnvironment Shared => SharedInstance.Value;

    /// <summary>The temporary folder holding the config, the token folder and the PIN files.</summary>
    public string RootDirectory { get; }

    /// <summary>The SoftHSM2 token folder.</summary>
    public string TokenDirectory { get; }

    /// <summary>The <c>softhsm2.conf</c> this process uses; give it to child processes as <c>SOFTHSM2_CONF</c>.</summary>
    public string ConfigPath { get; }

    /// <summary>Environment variables a child process needs to see this environment's tokens.</summary>
    public IReadOnlyDictionary<string, string> ChildProcessEnvironment => new Dictionary<string, string> { ["SOFTHSM2_CONF"] = ConfigPath };

    /// <summary>
    /// Initialises a new, empty token (random SO and user PINs; the user PIN in a 0600 file in
    /// <see cref="RootDirectory"/>) and returns the options to open it. Without fleet keys:
    /// <see cref="Pkcs11VaultToken.Open"/> refuses it until it is provisioned.
    /// </summary>
    /// <param name="label">Token label (at most 32 characters, unique in this process); null for a generated one.</param>
    /// <param name="maxConcurrentOperations">The options' cap on concurrent token operations.</param>
    public TokenOptions CreateToken(string? label = null, int maxConcurrentOperations = 2)
    {
        label ??= string.Create(CultureInfo.InvariantCulture, $"test-{Interlocked.Increment(ref _counter)}");
        var soPin = RandomPin();
        var userPin = RandomPin();
        try
        {
            var pinFile = Path.Combine(RootDirectory, label + ".pin");
            File.WriteAllBytes(pinFile, [.. userPin, (byte)'\n']);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(pinFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            var serial = TokenInitializer.Initialize(DefaultModulePath, label, soPin, userPin);
            return new TokenOptions
            {
                ModulePath = DefaultModulePath,
                TokenLabel = label,
                TokenSerial = serial,
                PinFile = pinFile,
                MaxConcurrentOperations = maxConcurrentOperations,
            };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(soPin);
            CryptographicOperations.ZeroMemory(userPin);
        }
    }

    /// <summary>A new token with fleet keys generated in it (Ed25519 signing key unless <paramref name="generation"/> says otherwise).</summary>
    public TokenOptions CreateProvisionedToken(string? label = null, FleetKeyGenerationOptions? generation = null, int maxConcurrentOperations = 2)
    {
        var options = CreateToken(label, maxConcurrentOperations);
        TokenProvisioner.ProvisionFleetKeys(options, generation);
        return options;
    }

    /// <summary>Creates, provisions and opens a token in one call.</summary>
    public Pkcs11VaultToken OpenProvisionedToken(string? label = null, FleetKeyGenerationOptions? generation = null, int maxConcurrentOperations = 2) =>
        Pkcs11VaultToken.Open(CreateProvisionedToken(label, generation, maxConcurrentOperations));

    /// <summary>
    /// Writes a <c>softhsm2.conf</c> (the settings of <c>softhsm/softhsm2.conf.template</c>) into
    /// <paramref name="directory"/> pointing at <paramref name="tokenDirectory"/> (both created).
    /// For a daemon child process with a token folder of its own: start it with
    /// <c>SOFTHSM2_CONF</c> set to the returned path, and create its tokens with
    /// <c>softhsm/make-tokens.sh</c> or from inside that process — this process's module is bound
    /// to <see cref="ConfigPath"/> and cannot reach another folder.
    /// </summary>
    /// <returns>The path of the config file.</returns>
    public static string WriteConfig(string directory, string? tokenDirectory = null)
    {
        tokenDirectory = Path.GetFullPath(tokenDirectory ?? Path.Combine(directory, "tokens"));
        Directory.CreateDirectory(directory);
        Directory.CreateDirectory(tokenDirectory);
        var path = Path.Combine(Path.GetFullPath(directory), "softhsm2.conf");
        File.WriteAllText(path, string.Join('\n',
            "# Written by HsmVault.Testing.SoftHsmEnvironment.",
            $"directories.tokendir = {tokenDirectory}",
            "objectstore.backend = file",
            "log.level = ERROR",
            "slots.removable = false",
            ""));
        return path;
    }

    private static byte[] RandomPin()
    {
        // 32 hex characters: printable, so softhsm2-util and shells can use them too.
        return System.Text.Encoding.ASCII.GetBytes(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)));
    }

    private static void EnsureSoftHsmInstalled()
    {
        if (File.Exists(DefaultModulePath))
        {
            return;
        }

        if (RunAptGet("install -y softhsm2") != 0 && (RunAptGet("update") != 0 || RunAptGet("install -y softhsm2") != 0))
        {
            throw new InvalidOperationException("softhsm2 is not installed and `apt-get install -y softhsm2` failed; install it by hand");
        }

        if (!File.Exists(DefaultModulePath))
        {
            throw new InvalidOperationException($"softhsm2 was installed but '{DefaultModulePath}' is missing");
        }
    }

    private static int RunAptGet(string arguments)
    {
        var start = new ProcessStartInfo("apt-get", arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var process = Process.Start(start) ?? throw new InvalidOperationException("cannot start apt-get");
        process.StandardOutput.ReadToEnd();
        process.StandardError.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode;
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder is harmless.
        }
        catch (UnauthorizedAccessException)
        {
            // Same.
        }
    }
}
