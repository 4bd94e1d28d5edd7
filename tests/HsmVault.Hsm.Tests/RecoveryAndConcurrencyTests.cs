using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using HsmVault.Hsm.Internal;
using static HsmVault.Hsm.Tests.TokenTestSupport;

namespace HsmVault.Hsm.Tests;

public class RecoveryAndConcurrencyTests
{
    [Fact]
    public void AllSessionsClosedFromOutside_NextOperationsSucceedOnTheSameObject()
    {
        using var token = Env.OpenProvisionedToken();
        var blob = token.Seal("before"u8, []);
        var generation = token.Generation;

        token.CurrentSlot.CloseAllSessions();

        Assert.Equal("before"u8.ToArray(), token.Unseal(blob, []));
        Assert.Equal(generation + 1, token.Generation);
        Assert.Equal("after"u8.ToArray(), token.Unseal(token.Seal("after"u8, []), []));
        Assert.Equal(64, token.Sign("m"u8).Length);
        Assert.Equal(generation + 1, token.Generation);
    }

    [Fact]
    public void LoggedOutFromOutside_NextOperationLogsInAgain()
    {
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);
        var generation = token.Generation;
        using (var admin = AdminSession.Open(options))
        {
            // Login state is shared by every session of the process on the token.
            admin.Session.Logout();
        }

        var output = new byte[32];
        token.ExpandOprfSeed("alice"u8, output);

        Assert.Equal(generation + 1, token.Generation);
        Assert.Contains(output, b => b != 0);
    }

    [Fact]
    public void SessionsClosedRepeatedly_EachTimeRecovers()
    {
        using var token = Env.OpenProvisionedToken();

        for (var i = 0; i < 5; i++)
        {
            token.CurrentSlot.CloseAllSessions();
            token.WriteDataObject("counter", [(byte)i]);
        }

        Assert.Equal([4], token.ReadDataObject("counter"));
    }

    [Fact]
    public async Task SessionsClosedBetweenOperationsUnderLoad_AllOperationsSucceed()
    {
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);
        using var stop = new CancellationTokenSource();
        var failures = new ConcurrentQueue<Exception>();
        var operations = 0;
        var workers = Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    var plaintext = RandomNumberGenerator.GetBytes(32);
                    Assert.Equal(plaintext, token.Unseal(token.Seal(plaintext, "ad"u8), "ad"u8));
                    Interlocked.Increment(ref operations);
                }
                catch (Exception ex)
                {
                    failures.Enqueue(ex);
                }
            }
        })).ToArray();

        // SoftHSM2 frees a session that C_CloseAllSessions closes even while another thread is
        // inside an operation on it, and crashes. So the sessions are killed between operations:
        // with every permit of the module's operation gate held, all workers queue, and then
        // find their pooled sessions dead at once.
        // Five kills whatever the machine's speed (a timer that ended the run could end it before the first kill on a
        // loaded machine); the workers then go on a little, so that they reconnect after the last one.
        var gate = Pkcs11Modules.OperationGate(options.ModulePath, options.MaxConcurrentOperations);
        for (var i = 0; i < 5; i++)
        {
            await Task.Delay(200);
            for (var permit = 0; permit < options.MaxConcurrentOperations; permit++)
            {
                await gate.WaitAsync();
            }

            token.CurrentSlot.CloseAllSessions();
            gate.Release(options.MaxConcurrentOperations);
        }

        await Task.Delay(200);
        await stop.CancelAsync();
        await Task.WhenAll(workers);
        Assert.Empty(failures);
        Assert.True(operations > 100, $"only {operations} operations succeeded");
        Assert.True(token.Generation > 1, "the token never reconnected");
    }

    [Fact]
    public void SixteenThreads_MixedOperations_CapTwo_AllResultsCorrect()
    {
        var options = Env.CreateToken(maxConcurrentOperations: 2);

        // SemaphoreSlim is not fair: on a loaded machine one of 16 threads can wait longer than the
        // default OperationTimeout for a slot; this test is about correct results, not waiting.
        options.OperationTimeout = TimeSpan.FromMinutes(10);
        var seed = RandomNumberGenerator.GetBytes(64);
        TokenProvisioner.ImportOprfSeed(options, seed);
        TokenProvisioner.ProvisionFleetKeys(options, new FleetKeyGenerationOptions { KeepExisting = true });
        using var token = Pkcs11VaultToken.Open(options);
        var publicKey = token.SigningKey.PublicKey;
        var deadline = Stopwatch.StartNew();
        var operations = 0;
        var errors = new ConcurrentQueue<string>();

        var threads = Enumerable.Range(0, 16).Select(t => new Thread(() =>
        {
            var i = 0;
            while (deadline.Elapsed < TimeSpan.FromSeconds(3))
            {
                try
                {
                    var message = BitConverter.GetBytes(((long)t << 32) | (uint)i);
                    switch (i++ % 3)
                    {
                        case 0:
                            var blob = token.Seal(message, message);
                            if (!token.Unseal(blob, message).AsSpan().SequenceEqual(message))
                            {
                                errors.Enqueue("unseal returned other data");
                            }

                            break;
                        case 1:
                            if (!Sodium.VerifyEd25519(token.Sign(message), message, publicKey))
                            {
                                errors.Enqueue("signature did not verify");
                            }

                            break;
                        default:
                            var output = new byte[32];
                            token.ExpandOprfSeed(message, output);
                            if (!output.AsSpan().SequenceEqual(HMACSHA512.HashData(seed, (byte[])[.. message, 0x01]).AsSpan(0, 32)))
                            {
                                errors.Enqueue("expand returned a wrong value");
                            }

                            break;
                    }

                    Interlocked.Increment(ref operations);
                }
                catch (Exception ex)
                {
                    errors.Enqueue(ex.ToString());
                }
            }
        })).ToList();
        threads.ForEach(thread => thread.Start());
        threads.ForEach(thread => thread.Join());

        Assert.Empty(errors);
        Assert.True(operations > 1000, $"only {operations} operations in 3 s");
    }
}
