using System.Text;
using System.Text.Json;
using HsmVault.Client;
using HsmVault.Crypto.Opaque;
using HsmVault.Testing.Opaque;

namespace HsmVault.Interop.Tests;

/// <summary>
/// A JavaScript client written from proto/ and the README alone (js/hsmvault-client.mjs: @grpc/grpc-js,
/// @grpc/proto-loader and @serenity-kit/opaque at its default options) against a real daemon on
/// 127.0.0.1, port 0, with a real SoftHSM2 token. JWTs are minted here with the tenant's key, as an
/// application backend would. Each test checks what the JS client got against the C# reference
/// client (same backup key, same fingerprint), so the README's envelopes are proven byte for byte.
/// </summary>
[Collection(NodeInteropFixtureGroup.Name)]
public sealed class JavaScriptClientTests(NodeInterop node)
{
    // Not ASCII, so that the password's encoding (UTF-8, no normalization) is part of what must agree.
    private const string Password = "correct horse battery st\u00E4ple";
    private const string WrongPassword = "correct horse battery staple";

    [Fact]
    public async Task DefaultFleet_JsClientAtLibraryDefaults_RegistersRecoversCountsAWrongPasswordAndDeletes()
    {
        await using var daemon = await TestDaemon.StartAsync(FleetDefaults);
        var address = AddressOf(daemon);

        // A fleet at its defaults publishes the empty context and the library's own default KSF,
        // so the client passes no keyStretching at all.
        var info = Ok(node.Call("vault.fleetInfo", ("address", address)));
        Assert.Equal("", info.GetProperty("opaqueContext").GetString());
        AssertArgon2id(Argon2idParameters.Rfc9106MemoryConstrained, info.GetProperty("argon2id"));
        Assert.Equal(JsonValueKind.Null, Ok(node.Call("vault.keyStretching", ("address", address))).GetProperty("keyStretching").ValueKind);

        const string user = "alice";
        var jwt = daemon.Setup.Mint(user);
        daemon.Setup.AddSecret(Password);
        var backupKey = daemon.Setup.NewBackupKey();

        var registered = Ok(node.Call("vault.register", ("address", address), ("jwt", jwt), ("password", Password), ("backupKey", backupKey)));
        Assert.Equal(10, registered.GetProperty("guessLimit").GetInt32());
        Assert.False(registered.GetProperty("replaced").GetBoolean());

        var wrong = Ok(node.Call("vault.recover", ("address", address), ("jwt", jwt), ("password", WrongPassword)));
        Assert.Equal("WRONG_PASSWORD", wrong.GetProperty("outcome").GetString());
        Assert.Equal(9, wrong.GetProperty("guessesRemaining").GetInt32());
        AssertStatus(Ok(node.Call("vault.status", ("address", address), ("jwt", jwt))), registered: true, guessLimit: 10, guessesRemaining: 9);

        var recovered = Ok(node.Call("vault.recover", ("address", address), ("jwt", jwt), ("password", Password)));
        Assert.Equal("SUCCESS", recovered.GetProperty("outcome").GetString());
        Assert.Equal(backupKey, recovered.GetProperty("backupKey").GetBytesFromBase64());
        Assert.Equal(BackupKeys.Fingerprint(backupKey), recovered.GetProperty("fingerprint").GetString());
        AssertStatus(Ok(node.Call("vault.status", ("address", address), ("jwt", jwt))), registered: true, guessLimit: 10, guessesRemaining: 10);

        // The reference client (and so the CLI) opens what the JS client stored: same password
        // bytes, same backup-key envelope.
        var reference = await daemon.CreateClient(user).RecoverAsync(Encoding.UTF8.GetBytes(Password));
        Assert.Equal(RecoveryStatus.Recovered, reference.Status);
        Assert.Equal(backupKey, reference.BackupKey);

        Ok(node.Call("vault.delete", ("address", address), ("jwt", jwt)));
        AssertStatus(Ok(node.Call("vault.status", ("address", address), ("jwt", jwt))), registered: false, guessLimit: 0, guessesRemaining: 0);
        var again = node.Call("vault.delete", ("address", address), ("jwt", jwt));
        Assert.Equal("NOT_FOUND", again.GetProperty("rpcError").GetProperty("code").GetString());

        await FinishAsync(daemon);
    }

    [Fact]
    public async Task FleetWithOtherArgon2id_JsClientMustPassArgon2idCustom_AndRecoversTheReferenceClientsKey()
    {
        await using var daemon = await TestDaemon.StartAsync(settings =>
        {
            // Set explicitly: an empty context must pass start-up validation, not only the default.
            settings["HsmVault:OpaqueContext"] = "";
        });
        var address = AddressOf(daemon);
        var info = Ok(node.Call("vault.fleetInfo", ("address", address)));
        Assert.Equal("", info.GetProperty("opaqueContext").GetString());

        // DaemonSetup's fleet publishes Argon2id m = 1024 KiB, t = 1, p = 2: the client must say so.
        var keyStretching = Ok(node.Call("vault.keyStretching", ("address", address))).GetProperty("keyStretching");
        var custom = keyStretching.GetProperty("argon2id-custom");
        Assert.Equal(1024, custom.GetProperty("memory").GetInt32());
        Assert.Equal(1, custom.GetProperty("iterations").GetInt32());
        Assert.Equal(2, custom.GetProperty("parallelism").GetInt32());

        const string user = "bob";
        var jwt = daemon.Setup.Mint(user);
        daemon.Setup.AddSecret(Password);
        var backupKey = daemon.Setup.NewBackupKey();
        await daemon.CreateClient(user).RegisterAsync(Encoding.UTF8.GetBytes(Password), backupKey);

        // A client that leaves the library's default KSF in place derives another key from the
        // right password: the login fails, and it still costs a guess.
        var ignoringTheFleet = Ok(node.Call("vault.recover",
            ("address", address), ("jwt", jwt), ("password", Password), ("keyStretching", "memory-constrained")));
        Assert.Equal("WRONG_PASSWORD", ignoringTheFleet.GetProperty("outcome").GetString());
        Assert.Equal(9, ignoringTheFleet.GetProperty("guessesRemaining").GetInt32());

        // Nobody normalizes: the same text with "ä" decomposed (a + U+0308) is another password.
        const string decomposed = "correct horse battery sta\u0308ple";
        var otherBytes = Ok(node.Call("vault.recover", ("address", address), ("jwt", jwt), ("password", decomposed)));
        Assert.Equal("WRONG_PASSWORD", otherBytes.GetProperty("outcome").GetString());
        Assert.Equal(8, otherBytes.GetProperty("guessesRemaining").GetInt32());

        var recovered = Ok(node.Call("vault.recover", ("address", address), ("jwt", jwt), ("password", Password)));
        Assert.Equal("SUCCESS", recovered.GetProperty("outcome").GetString());
        Assert.Equal(backupKey, recovered.GetProperty("backupKey").GetBytesFromBase64());
        AssertStatus(Ok(node.Call("vault.status", ("address", address), ("jwt", jwt))), registered: true, guessLimit: 10, guessesRemaining: 10);

        await FinishAsync(daemon);
    }

    [Fact]
    public async Task FleetWithOperatorChosenContext_PublishesIt_AndTheJsClientRefusesBeforeSpendingAGuess()
    {
        // DaemonSetup configures a non-empty context (TestOpaqueSettings), as an operator may.
        await using var daemon = await TestDaemon.StartAsync();
        var address = AddressOf(daemon);
        var info = Ok(node.Call("vault.fleetInfo", ("address", address)));
        Assert.Equal(TestOpaqueSettings.Context, Encoding.UTF8.GetString(info.GetProperty("opaqueContext").GetBytesFromBase64()));

        // A client that can set the context (the reference client reads it from GetFleetInfo) works.
        const string user = "carol";
        daemon.Setup.AddSecret(Password);
        var backupKey = daemon.Setup.NewBackupKey();
        var reference = daemon.CreateClient(user);
        await reference.RegisterAsync(Encoding.UTF8.GetBytes(Password), backupKey);

        // @serenity-kit/opaque cannot: the JS client stops before StartRecovery charges a guess.
        var refusal = Assert.Throws<InvalidOperationException>(() =>
            node.Call("vault.recover", ("address", address), ("jwt", daemon.Setup.Mint(user)), ("password", Password)));
        Assert.Contains("only supports the empty context", refusal.Message, StringComparison.Ordinal);
        var status = await reference.GetStatusAsync();
        Assert.Equal(10u, status.GuessesRemaining);

        var recovered = await reference.RecoverAsync(Encoding.UTF8.GetBytes(Password));
        Assert.Equal(RecoveryStatus.Recovered, recovered.Status);
        Assert.Equal(backupKey, recovered.BackupKey);

        await FinishAsync(daemon);
    }

    [Fact]
    public async Task Cli_RecoversWhatTheJsClientStored_WritesTheRawKeyAndPrintsItsFingerprint()
    {
        await using var daemon = await TestDaemon.StartAsync(settings => settings.Remove("HsmVault:OpaqueContext"));
        var address = AddressOf(daemon);
        const string user = "dave";
        daemon.Setup.AddSecret(Password);
        var backupKey = daemon.Setup.NewBackupKey();
        Ok(node.Call("vault.register", ("address", address), ("jwt", daemon.Setup.Mint(user)), ("password", Password), ("backupKey", backupKey)));

        // The password file's first line, without its CR LF, is the password (as UTF-8 bytes).
        var passwordFile = Path.Combine(daemon.Setup.WorkDirectory, "password.txt");
        File.WriteAllBytes(passwordFile, [.. Encoding.UTF8.GetBytes(Password), (byte)'\r', (byte)'\n']);
        var keyFile = Path.Combine(daemon.Setup.WorkDirectory, "backup.key");
        var cli = await ChildProcesses.RunAsync(ChildProcesses.CliDll,
        [
            "recover", "--server", daemon.Address.ToString(), "--tenant-key", daemon.Setup.TenantPrivateKeyFile,
            "--tenant", DaemonSetup.Tenant, "--user", user, "--password-file", passwordFile, "--key-out", keyFile, "--unverified-fleet",
        ]);

        Assert.True(cli.ExitCode == 0, cli.AllOutput);
        Assert.Equal(backupKey, File.ReadAllBytes(keyFile));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        }

        Assert.Contains($"fingerprint {BackupKeys.Fingerprint(backupKey)}", cli.StandardOutput, StringComparison.Ordinal);

        await FinishAsync(daemon);
    }

    /// <summary>Leaves the OPAQUE context and the KSF at the fleet's defaults (DaemonSetup sets both).</summary>
    private static void FleetDefaults(Dictionary<string, string?> settings)
    {
        settings.Remove("HsmVault:OpaqueContext");
        settings.Remove("HsmVault:Argon2MemoryKib");
        settings.Remove("HsmVault:Argon2Iterations");
        settings.Remove("HsmVault:Argon2Parallelism");
    }

    /// <summary>host:port, as @grpc/grpc-js takes it.</summary>
    private static string AddressOf(TestDaemon daemon) => $"{daemon.Address.Host}:{daemon.Address.Port}";

    /// <summary>Stops the daemon and fails on any unexpected error log or leaked secret.</summary>
    private static async Task FinishAsync(TestDaemon daemon)
    {
        await daemon.StopAsync();
        daemon.AssertCleanLogs();
    }

    /// <summary>The reply, after checking that no RPC was refused.</summary>
    private static JsonElement Ok(JsonElement reply)
    {
        Assert.False(reply.TryGetProperty("rpcError", out var error), $"the RPC was refused: {error}");
        return reply;
    }

    private static void AssertArgon2id(Argon2idParameters expected, JsonElement published)
    {
        Assert.Equal(expected.MemoryKib, published.GetProperty("memory_kib").GetInt32());
        Assert.Equal(expected.Iterations, published.GetProperty("iterations").GetInt32());
        Assert.Equal(expected.Parallelism, published.GetProperty("parallelism").GetInt32());
    }

    private static void AssertStatus(JsonElement status, bool registered, int guessLimit, int guessesRemaining)
    {
        Assert.Equal(registered, status.GetProperty("registered").GetBoolean());
        Assert.Equal(guessLimit, status.GetProperty("guessLimit").GetInt32());
        Assert.Equal(guessesRemaining, status.GetProperty("guessesRemaining").GetInt32());
        Assert.False(status.GetProperty("destroyed").GetBoolean());
    }
}
