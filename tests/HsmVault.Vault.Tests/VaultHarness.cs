using System.Text;
using HsmVault.Crypto;
using HsmVault.Crypto.Opaque;
using HsmVault.Hsm;
using HsmVault.Testing.Opaque;
using HsmVault.Vault.Audit;
using HsmVault.Vault.Moves;
using HsmVault.Vault.Signing;
using HsmVault.Vault.State;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace HsmVault.Vault.Tests;

/// <summary>
/// One vault member in-process: a real SoftHSM2 token with fleet keys and a sealed AKE key,
/// a real SQLite state in a temp folder, the single-member log, and an OPAQUE client using the
/// configuration the service publishes (cheap Argon2id parameters, for speed).
/// </summary>
internal sealed class VaultHarness : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly ServerKeyPair _keyPair;
    private readonly PredecessorFleets _predecessors;
    private DirectVaultLog _log;

    /// <param name="configure">Changes to the vault options.</param>
    /// <param name="openToken">The token to run over (another implementation, a faulty one); null for a fresh SoftHSM2 token.</param>
    /// <param name="predecessors">The fleets this one takes users over from; none by default.</param>
    public VaultHarness(Action<VaultOptions>? configure = null, Func<Pkcs11VaultToken>? openToken = null, PredecessorFleets? predecessors = null)
    {
        _predecessors = predecessors ?? PredecessorFleets.None;
        Options = new VaultOptions
        {
            FleetId = "test-fleet",
            MemberId = "member-1",
            DataDirectory = _directory.Path,
            Argon2MemoryKib = TestOpaqueSettings.Argon2.MemoryKib,
            Argon2Iterations = TestOpaqueSettings.Argon2.Iterations,
            Argon2Parallelism = TestOpaqueSettings.Argon2.Parallelism,
        };
        configure?.Invoke(Options);
        Token = openToken?.Invoke() ?? Tokens.OpenProvisioned();
        ServerPublicKey = FleetKeys.CreateAkeKey(Token);
        _keyPair = FleetKeys.LoadAkeKey(Token);
        (State, _log, Service) = Start();
        Client = new OpaqueClient(VaultService.OpaqueConfigurationFor(Options));
    }

    public VaultOptions Options { get; }

    public Pkcs11VaultToken Token { get; }

    public byte[] ServerPublicKey { get; }

    public VaultStateMachine State { get; private set; }

    public DirectVaultLog Log => _log;

    public VaultService Service { get; private set; }

    public OpaqueClient Client { get; }

    public FakeTimeProvider Time { get; } = new();

    public string DatabasePath => Path.Combine(_directory.Path, "vault.db");

    /// <summary>Stops the service and opens it again on the same database and token, as a daemon restart would.</summary>
    public void Restart()
    {
        Service.Dispose();
        _log.Dispose();
        State.Dispose();
        (State, _log, Service) = Start();
    }

    public static byte[] Password(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>A whole registration, as a client would do it. Returns the export key.</summary>
    public async Task<(RegistrationResult Result, byte[] ExportKey)> RegisterAsync(
        UserIdentity user, string password, byte[] backupKey, uint guessLimit = 0, bool replace = false, string? movingFrom = null, ulong bundleEpoch = 0)
    {
        var start = Client.CreateRegistrationRequest(Password(password));
        var started = Service.StartRegistration(user, start.RegistrationRequest);
        var finish = Client.FinalizeRegistrationRequest(start.State, started.RegistrationResponse);
        start.State.Dispose();
        var encrypted = SecretEnvelopes.EncryptBackupKey(finish.ExportKey, backupKey);
        var result = await Service.FinishRegistrationAsync(user, started.RegistrationTicket, finish.RegistrationRecord, encrypted, guessLimit, replace, bundleEpoch, movingFrom, CancellationToken.None);
        return (result, finish.ExportKey);
    }

    /// <summary>A registration ticket, a client's RegistrationRecord and encrypted secret, ready for FinishRegistration.</summary>
    public (byte[] Ticket, byte[] Record, byte[] EncryptedSecret) PrepareRegistration(UserIdentity user, string password, byte[] backupKey)
    {
        var start = Client.CreateRegistrationRequest(Password(password));
        var started = Service.StartRegistration(user, start.RegistrationRequest);
        var finish = Client.FinalizeRegistrationRequest(start.State, started.RegistrationResponse);
        start.State.Dispose();
        return (started.RegistrationTicket, finish.RegistrationRecord, SecretEnvelopes.EncryptBackupKey(finish.ExportKey, backupKey));
    }

    /// <summary>
    /// A whole recovery. With the right password the client finishes honestly and opens the
    /// release; with a wrong one the client cannot build KE3 (the envelope does not open), so
    /// it sends 64 random bytes, as an attacker guessing would.
    /// </summary>
    public async Task<Recovery> RecoverAsync(UserIdentity user, string password)
    {
        var login = Client.GenerateKe1(Password(password));
        var start = await Service.StartRecoveryAsync(user, login.Ke1, [], CancellationToken.None);
        var done = Client.GenerateKe3(login.State, start.Ke2);
        login.State.Dispose();
        var finish = await Service.FinishRecoveryAsync(user, start.SessionId, done?.Ke3 ?? Bytes.Random(OpaqueSizes.Ke3), CancellationToken.None);
        byte[]? backupKey = null;
        if (done is not null && finish.ReleasedSecret is not null)
        {
            var released = SecretEnvelopes.OpenRelease(done.SessionKey, start.SessionId, finish.ReleasedSecret);
            Assert.NotNull(released);
            backupKey = SecretEnvelopes.DecryptBackupKey(done.ExportKey, released);
            Assert.NotNull(backupKey);
        }

        return new Recovery(start, finish, done is not null, backupKey);
    }

    /// <summary>StartRecovery only; the caller keeps the client state to finish.</summary>
    public async Task<(RecoveryStartResult Start, ClientLoginFinish? Client)> StartAsync(UserIdentity user, string password)
    {
        var login = Client.GenerateKe1(Password(password));
        var start = await Service.StartRecoveryAsync(user, login.Ke1, [], CancellationToken.None);
        var done = Client.GenerateKe3(login.State, start.Ke2);
        login.State.Dispose();
        return (start, done);
    }

    /// <summary>The user's status as counts only (registered, limit, remaining, destroyed), for comparing with an expected one; moves read <see cref="VaultService.GetStatusAsync"/>.</summary>
    public async Task<RecordStatus> StatusAsync(UserIdentity user)
    {
        var status = await Service.GetStatusAsync(user, CancellationToken.None);
        return new RecordStatus(status.Registered, status.GuessLimit, status.GuessesRemaining, status.Destroyed);
    }

    /// <summary>Runs SQL on the database file behind the service's back, as an attacker with the disk could.</summary>
    public void TamperWithDatabase(string sql, params (string Name, object Value)[] parameters)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        Assert.Equal(1, command.ExecuteNonQuery());
    }

    private (VaultStateMachine, DirectVaultLog, VaultService) Start()
    {
        var members = new HashSet<string>(StringComparer.Ordinal) { Options.MemberId };
        var verifier = new CommandVerifier(Options.FleetId, Token.SigningKey, members, _predecessors);
        var state = new VaultStateMachine(_directory.Path, verifier, new VaultAudit(NullLoggerFactory.Instance, Options.LogUserIds), Options.StateDigestInterval, members.Count);
        var log = new DirectVaultLog(state);
        var signer = new CommandSigner(Token, Options.FleetId, Options.MemberId);
        var service = new VaultService(Token, _keyPair, state, log, signer, Microsoft.Extensions.Options.Options.Create(Options), _predecessors, Time, NullLogger<VaultService>.Instance);
        return (state, log, service);
    }

    public void Dispose()
    {
        Service.Dispose();
        _log.Dispose();
        State.Dispose();
        _keyPair.Dispose();
        Token.Dispose();
        _directory.Dispose();
    }
}

internal sealed record Recovery(RecoveryStartResult Start, RecoveryFinishResult Finish, bool ClientAuthenticatedServer, byte[]? BackupKey);
