using System.Collections.Concurrent;
using System.Security.Cryptography;
using HsmVault.Hsm;
using HsmVault.Testing;
using HsmVault.Testing.Faults;
using HsmVault.Vault;
using HsmVault.Vault.Tests;
using Net.Pkcs11Interop.Common;

namespace HsmVault.Tokens.Tests;

/// <summary>
/// What real HSMs do and SoftHSM2 never does, raised inside a real token's
/// <see cref="Pkcs11VaultToken"/> by <see cref="TokenFaults"/>: the token recovers by itself, or
/// the call is refused as unavailable; no answer is wrong and no guess is refunded. Run over
/// both PKCS#11 implementations (<see cref="SoftHsm2FaultInjectionTests"/>,
/// <see cref="NssFaultInjectionTests"/>), whose session and login handling differ.
/// </summary>
public abstract class FaultInjectionTests : IDisposable
{
    private static readonly UserIdentity Alice = new("tenant", "alice");
    private readonly TokenFaults _faults = new();

    public void Dispose()
    {
        _faults.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>A new token of this implementation, without fleet keys.</summary>
    protected abstract TokenOptions CreateToken();

    /// <summary>A new token of this implementation with fleet keys.</summary>
    protected abstract TokenOptions CreateProvisionedToken();

    public static TheoryData<CKR> LostSessionFaults =>
    [
        CKR.CKR_SESSION_HANDLE_INVALID,
        CKR.CKR_SESSION_CLOSED,
        CKR.CKR_USER_NOT_LOGGED_IN,
        CKR.CKR_DEVICE_REMOVED,
        CKR.CKR_TOKEN_NOT_PRESENT,
        CKR.CKR_DEVICE_ERROR,
    ];

    [Theory]
    [MemberData(nameof(LostSessionFaults))]
    public void Operation_FaultOnce_TokenReconnectsAndAnswersCorrectly(CKR fault)
    {
        using var token = _faults.Open(CreateProvisionedToken());
        var blob = token.Seal("secret"u8, "ad"u8);
        var generation = token.Generation;

        _faults.FailNext(fault, "Unseal");

        Assert.Equal("secret"u8.ToArray(), token.Unseal(blob, "ad"u8));
        Assert.Equal(1, _faults.Injected);
        Assert.Equal(generation + 1, token.Generation);
    }

    [Fact]
    public void Operation_FaultTwice_IsRefusedAsUnavailable_ThenTheTokenServesAgain()
    {
        using var token = _faults.Open(CreateProvisionedToken());
        var blob = token.Seal("secret"u8, "ad"u8);
        _faults.FailNext(CKR.CKR_SESSION_HANDLE_INVALID);
        _faults.FailNext(CKR.CKR_SESSION_HANDLE_INVALID);

        var ex = Assert.Throws<TokenUnavailableException>(() => token.Unseal(blob, "ad"u8));

        Assert.Contains("is unavailable: Unseal failed after reconnecting", ex.Message, StringComparison.Ordinal);
        Assert.Equal("secret"u8.ToArray(), token.Unseal(blob, "ad"u8));
    }

    [Fact]
    public void TokenRemoved_CallsAreRefused_ThenReinserted_TheTokenIsFoundAgain()
    {
        using var token = _faults.Open(CreateProvisionedToken());
        var blob = token.Seal("secret"u8, []);

        _faults.RemoveToken();
        Assert.Throws<TokenUnavailableException>(() => token.Unseal(blob, []));
        Assert.Throws<TokenUnavailableException>(() => token.Sign("m"u8));
        _faults.ReinsertToken();

        Assert.Equal("secret"u8.ToArray(), token.Unseal(blob, []));
        Assert.Equal(64, token.Sign("m"u8).Length);
    }

    [Fact]
    public async Task HungToken_CallsWaitingForASlotAreRefusedAsUnavailable_NotBlockedForever()
    {
        var options = CreateProvisionedToken();
        options.OperationTimeout = TimeSpan.FromMilliseconds(200);
        using var token = _faults.Open(options);
        var blob = token.Seal("secret"u8, []);

        // Every slot of the module's cap is taken by an operation stuck inside the token.
        _faults.HoldOperations();
        var stuck = Enumerable.Range(0, options.MaxConcurrentOperations)
            .Select(_ => Task.Factory.StartNew(() => token.Unseal(blob, []), TaskCreationOptions.LongRunning)).ToList();
        while (_faults.Held < options.MaxConcurrentOperations)
        {
            await Task.Delay(10);
        }

        var ex = Assert.Throws<TokenUnavailableException>(() => token.Seal("more"u8, []));
        Assert.Contains("operation slots", ex.Message, StringComparison.Ordinal);

        _faults.ReleaseOperations();
        foreach (var result in await Task.WhenAll(stuck))
        {
            Assert.Equal("secret"u8.ToArray(), result);
        }
    }

    [Fact]
    public void RandomFaultsUnderLoad_EveryAnswerIsRightOrRefused()
    {
        var options = CreateToken();
        var seed = RandomNumberGenerator.GetBytes(64);
        TokenProvisioner.ImportOprfSeed(options, seed);
        TokenProvisioner.ProvisionFleetKeys(options, new FleetKeyGenerationOptions { KeepExisting = true });
        using var token = _faults.Open(options);
        var wrong = new ConcurrentQueue<string>();
        var refused = 0;
        var faults = new[] { CKR.CKR_SESSION_HANDLE_INVALID, CKR.CKR_USER_NOT_LOGGED_IN, CKR.CKR_DEVICE_ERROR };
        var random = new Random(9);
        for (var i = 0; i < 60; i++)
        {
            _faults.FailNext(faults[random.Next(faults.Length)]);
        }

        Parallel.For(0, 6, new ParallelOptions { MaxDegreeOfParallelism = 6 }, t =>
        {
            for (var i = 0; i < 100; i++)
            {
                var message = BitConverter.GetBytes(((long)t << 32) | (uint)i);
                try
                {
                    var output = new byte[32];
                    token.ExpandOprfSeed(message, output);
                    if (!output.AsSpan().SequenceEqual(HMACSHA512.HashData(seed, (byte[])[.. message, 0x01]).AsSpan(0, 32)))
                    {
                        wrong.Enqueue("expand");
                    }

                    if (!token.Unseal(token.Seal(message, message), message).AsSpan().SequenceEqual(message))
                    {
                        wrong.Enqueue("unseal");
                    }
                }
                catch (TokenUnavailableException)
                {
                    Interlocked.Increment(ref refused);
                }
            }
        });

        Assert.Empty(wrong);
        Assert.Equal(60, _faults.Injected);
    }

    [Theory]
    [InlineData(CKR.CKR_SESSION_HANDLE_INVALID)]
    [InlineData(CKR.CKR_USER_NOT_LOGGED_IN)]
    public async Task Recovery_TokenFaultDuringStartAndFinish_SucceedsAndCountsOnce(CKR fault)
    {
        using var vault = new VaultHarness(openToken: () => _faults.Open(CreateProvisionedToken()));
        var backupKey = Bytes.Random(32);
        await vault.RegisterAsync(Alice, "password", backupKey);
        var (start, client) = await FaultOnNextAsync(fault, () => vault.StartAsync(Alice, "password"));
        Assert.Equal(9, start.GuessesRemaining);

        _faults.FailNext(fault);
        var finish = await vault.Service.FinishRecoveryAsync(Alice, start.SessionId, client!.Ke3, CancellationToken.None);

        Assert.Equal(RecoveryOutcome.Success, finish.Outcome);
        Assert.Equal(10, (await vault.StatusAsync(Alice)).GuessesRemaining);
        Assert.True(_faults.Injected >= 1);
    }

    [Fact]
    public async Task Recovery_TokenRemoved_IsRefusedUnavailable_AndNoGuessIsRefunded()
    {
        using var vault = new VaultHarness(openToken: () => _faults.Open(CreateProvisionedToken()));
        await vault.RegisterAsync(Alice, "password", Bytes.Random(32));
        Assert.Equal(RecoveryOutcome.WrongPassword, (await vault.RecoverAsync(Alice, "wrong")).Finish.Outcome);
        Assert.Equal(9, (await vault.StatusAsync(Alice)).GuessesRemaining);

        _faults.RemoveToken();
        var refused = await Assert.ThrowsAsync<VaultException>(() => vault.StartAsync(Alice, "wrong"));
        Assert.Equal(VaultError.Unavailable, refused.Error);
        _faults.ReinsertToken();

        // The refused attempt may or may not have been charged (the token can fail before or after
        // the charge is committed), but nothing given back: the count only goes down from here.
        var afterRefusal = (await vault.StatusAsync(Alice)).GuessesRemaining;
        Assert.InRange(afterRefusal, 8, 9);
        Assert.Equal(RecoveryOutcome.WrongPassword, (await vault.RecoverAsync(Alice, "wrong")).Finish.Outcome);
        Assert.Equal(afterRefusal - 1, (await vault.StatusAsync(Alice)).GuessesRemaining);
        var right = await vault.RecoverAsync(Alice, "password");
        Assert.Equal(RecoveryOutcome.Success, right.Finish.Outcome);
        Assert.NotNull(right.BackupKey);
    }

    [Fact]
    public async Task Recovery_WrongGuessThenTokenRemovedBeforeFinish_GuessStaysCharged()
    {
        using var vault = new VaultHarness(openToken: () => _faults.Open(CreateProvisionedToken()));
        await vault.RegisterAsync(Alice, "password", Bytes.Random(32));
        var (start, _) = await vault.StartAsync(Alice, "wrong");
        Assert.Equal(9, start.GuessesRemaining);

        _faults.RemoveToken();
        try
        {
            var finish = await vault.Service.FinishRecoveryAsync(Alice, start.SessionId, Bytes.Random(Crypto.Opaque.OpaqueSizes.Ke3), CancellationToken.None);
            Assert.NotEqual(RecoveryOutcome.Success, finish.Outcome);
        }
        catch (VaultException e)
        {
            Assert.Equal(VaultError.Unavailable, e.Error);
        }

        _faults.ReinsertToken();
        Assert.Equal(9, (await vault.StatusAsync(Alice)).GuessesRemaining);
    }

    private async Task<T> FaultOnNextAsync<T>(CKR fault, Func<Task<T>> work)
    {
        _faults.FailNext(fault);
        return await work();
    }
}

/// <summary>The fault tests over SoftHSM2.</summary>
public sealed class SoftHsm2FaultInjectionTests : FaultInjectionTests
{
    protected override TokenOptions CreateToken() => SoftHsmEnvironment.Shared.CreateToken();

    protected override TokenOptions CreateProvisionedToken() => SoftHsmEnvironment.Shared.CreateProvisionedToken();
}

/// <summary>The fault tests over NSS softoken.</summary>
public sealed class NssFaultInjectionTests : FaultInjectionTests
{
    protected override TokenOptions CreateToken() => NssEnvironment.Shared.CreateToken();

    protected override TokenOptions CreateProvisionedToken() => NssEnvironment.Shared.CreateProvisionedToken();
}
