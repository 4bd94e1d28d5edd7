using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using HsmVault.Hsm;
using HsmVault.Hsm.Internal;

namespace HsmVault.Testing;

/// <summary>
/// NSS softoken (<c>libsoftokn3.so</c>), a second PKCS#11 implementation, with its database in
/// a temporary folder per test process.
/// </summary>
/// <remarks>
/// NSS takes its database folder in the configuration string of C_Initialize
/// (<see cref="TokenOptions.ModuleInitArgs"/>) and a module is initialised once per process, so
/// a test process has one NSS token, labelled <see cref="TokenLabel"/>. Tests that need tokens
/// of their own get one key-label prefix each (<see cref="TokenOptions.KeyLabelPrefix"/>): every
/// object the vault keeps is found by its label, so two prefixes in one token are as separate
/// as two tokens. The database is made as an operator would, with <c>certutil -N</c>
/// (installing libnss3-tools with apt-get when it is missing). A daemon child process opens the
/// same database with the same options (NSS's sql: format is built for several processes).
/// </remarks>
public sealed class NssEnvironment
{
    /// <summary>The label NSS softoken gives its key and certificate database token.</summary>
    public const string TokenLabel = "NSS Certificate DB";

    private static readonly Lazy<NssEnvironment> SharedInstance = new(() => new NssEnvironment(), LazyThreadSafetyMode.ExecutionAndPublication);
    private int _counter;

    private NssEnvironment()
    {
        ModulePath = FindModule() ?? throw new InvalidOperationException(
            "NSS softoken (libsoftokn3.so) is missing; install it with `apt-get install -y libnss3`");
        EnsureCertutil();
        RootDirectory = Directory.CreateTempSubdirectory("hsmvault-nss-").FullName;
        DatabaseDirectory = Path.Combine(RootDirectory, "db");
        Directory.CreateDirectory(DatabaseDirectory);
        PinFile = Path.Combine(RootDirectory, "user.pin");
        var pin = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        File.WriteAllText(PinFile, pin + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(PinFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        CreateDatabase(DatabaseDirectory);
        ModuleInitArgs = InitArgsFor(DatabaseDirectory);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(RootDirectory);
    }

    /// <summary>The one NSS environment of this test process.</summary>
    public static NssEnvironment Shared => SharedInstance.Value;

    /// <summary>Path of <c>libsoftokn3.so</c>.</summary>
    public string ModulePath { get; }

    /// <summary>The temporary folder of the database and PIN file.</summary>
    public string RootDirectory { get; }

    /// <summary>The NSS database folder (<c>cert9.db</c>, <c>key4.db</c>).</summary>
    public string DatabaseDirectory { get; }

    /// <summary>File holding the database password, the token's user PIN.</summary>
    public string PinFile { get; }

    /// <summary>The C_Initialize configuration string for <see cref="DatabaseDirectory"/>.</summary>
    public string ModuleInitArgs { get; }

    /// <summary>NSS softoken's C_Initialize configuration string for a database folder (what an operator puts in HsmVault:Token:ModuleInitArgs).</summary>
    public static string InitArgsFor(string databaseDirectory) =>
        $"configdir='sql:{databaseDirectory}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=";

    /// <summary>Options for a part of the NSS token of its own (a fresh key-label prefix), without fleet keys.</summary>
    /// <param name="prefix">Key-label prefix; null for a generated, unique one.</param>
    /// <param name="maxConcurrentOperations">The options' cap on concurrent token operations.</param>
    public TokenOptions CreateToken(string? prefix = null, int maxConcurrentOperations = 2) => new()
    {
        ModulePath = ModulePath,
        TokenLabel = TokenLabel,
        PinFile = PinFile,
        ModuleInitArgs = ModuleInitArgs,
        MaxConcurrentOperations = maxConcurrentOperations,
        KeyLabelPrefix = prefix ?? string.Create(CultureInfo.InvariantCulture, $"nss-{Environment.ProcessId}-{Interlocked.Increment(ref _counter)}"),
    };

    /// <summary>A fresh part of the token with fleet keys generated in it.</summary>
    public TokenOptions CreateProvisionedToken(string? prefix = null, FleetKeyGenerationOptions? generation = null, int maxConcurrentOperations = 2)
    {
        var options = CreateToken(prefix, maxConcurrentOperations);
        TokenProvisioner.ProvisionFleetKeys(options, generation);
        return options;
    }

    /// <summary>Creates, provisions and opens in one call.</summary>
    public Pkcs11VaultToken OpenProvisionedToken(string? prefix = null, FleetKeyGenerationOptions? generation = null, int maxConcurrentOperations = 2) =>
        Pkcs11VaultToken.Open(CreateProvisionedToken(prefix, generation, maxConcurrentOperations));

    /// <summary>Makes an empty NSS database in <paramref name="directory"/> whose password is <see cref="PinFile"/>'s, as an operator would.</summary>
    public void CreateDatabase(string directory) => Run("certutil", $"-N -d sql:{directory} -f {PinFile}");

    /// <summary>Whether the NSS module is already loaded in this process (it must be loaded with <see cref="ModuleInitArgs"/>).</summary>
    public bool IsLoaded => Pkcs11Modules.IsLoaded(ModulePath);

    private static string? FindModule()
    {
        string[] candidates =
        [
            "/usr/lib/x86_64-linux-gnu/libsoftokn3.so",
            "/usr/lib/aarch64-linux-gnu/libsoftokn3.so",
            "/usr/lib64/libsoftokn3.so",
            "/usr/lib/libsoftokn3.so",
        ];
        var found = candidates.FirstOrDefault(File.Exists);
        if (found is null && AptGet.Install("libnss3"))
        {
            found = candidates.FirstOrDefault(File.Exists);
        }

        return found;
    }

    private static void EnsureCertutil()
    {
        if (!File.Exists("/usr/bin/certutil") && !AptGet.Install("libnss3-tools"))
        {
            throw new InvalidOperationException("certutil is missing and `apt-get install -y libnss3-tools` failed; install it by hand");
        }
    }

    private static void Run(string program, string arguments)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {program}");
        var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {arguments} failed ({process.ExitCode}): {output}");
        }
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

/// <summary>Installs a missing Debian package, as the Makefile's prerequisites do.</summary>
internal static class AptGet
{
    public static bool Install(string package) =>
        Run($"install -y {package}") == 0 || (Run("update") == 0 && Run($"install -y {package}") == 0);

    private static int Run(string arguments)
    {
        var start = new ProcessStartInfo("apt-get", arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        try
        {
            using var process = Process.Start(start);
            if (process is null)
            {
                return -1;
            }

            process.StandardOutput.ReadToEnd();
            process.StandardError.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }
}
