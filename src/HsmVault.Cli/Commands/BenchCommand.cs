using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Grpc.Net.Client;
using HsmVault.Client;
using HsmVault.Crypto.Opaque;
using HsmVault.Hsm;

namespace HsmVault.Cli.Commands;

/// <summary>
/// <c>hsmvault bench</c>: recoveries per second and their latency against running members,
/// and the latency of a single committed write. Clients use an identity KSF for their own
/// synthetic users (the KSF runs only on clients, so the server's work is the same), so the
/// figures measure the vault, not Argon2id on the benchmarking machine.
/// <para>
/// With <c>--pids</c> (the members' process ids on this machine) it also reads their CPU time from
/// <c>/proc/PID/stat</c> before and after the recoveries, and prints it per recovery beside a same-run
/// micro-benchmark of the server's KE2, so the ratio holds on a noisy machine; and the CPU per call of GetFleetInfo, a
/// call that does nothing, so the transport's share of a recovery can be read off the same run.
/// With <c>--token-config</c> (a member's configuration file) it also times, in this process and against that member's
/// token, the token operations one recovery makes (one unseal, one OPRF seed expansion, two command signatures), and
/// prints the daemons' CPU per recovery without them: SoftHSM2 does that work in the daemon's process, on its CPU,
/// where a hardware token does it in the token.
/// </para>
/// <para>
/// The saturated run is measured after a warm-up of the same load (<c>--warmup-seconds</c>, 10 by default), so the
/// figures are those of a daemon that has been serving for a while: in its first seconds under load the .NET JIT
/// recompiles the hot paths (tiered compilation), which costs a fresh daemon about a third more CPU per recovery.
/// </para>
/// <para>
/// After the saturated run (closed loop: every client starts its next recovery when one ends) it offers
/// recoveries at half the throughput just measured, open loop at a fixed rate, and prints their latency:
/// each one measured from when it was due, so time spent queueing behind a slow one is counted.
/// </para>
/// </summary>
internal static class BenchCommand
{
    public static async Task<int> RunAsync(Arguments args, CancellationToken cancellationToken)
    {
        var servers = (args.Optional("server", "HSMVAULT_SERVER") ?? Connection.DefaultServer).Split(',', StringSplitOptions.RemoveEmptyEntries);
        var tenantKeyFile = args.Required("tenant-key", "HSMVAULT_TENANT_KEY_FILE");
        var tenant = args.Optional("tenant", "HSMVAULT_TENANT") ?? "dev-tenant";
        var seconds = args.Int("seconds", 10);
        var warmupSeconds = args.Int("warmup-seconds", 10);
        var concurrency = args.Int("concurrency", 8);
        var writes = args.Int("writes", 200);
        var label = args.Optional("label") ?? $"{servers.Length} member{(servers.Length == 1 ? "" : "s")}";
        var pids = (args.Optional("pids") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => int.Parse(p, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var tokenConfig = args.Optional("token-config");
        args.RejectUnknown();

        using var tenantKey = ECDsa.Create();
        tenantKey.ImportFromPem(await File.ReadAllTextAsync(tenantKeyFile, cancellationToken));
        var channels = servers.Select(s => GrpcChannel.ForAddress(s)).ToList();
        try
        {
            var runId = Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
            // Twice as many users as concurrent clients: the paced run must never wait for a free one.
            var clients = new List<(VaultClient Client, byte[] Password)>();
            for (var i = 0; i < 2 * concurrency; i++)
            {
                var client = NewClient(channels[i % channels.Count], tenantKey, tenant, $"bench-{runId}-{i}");
                var password = Encoding.UTF8.GetBytes($"bench password {i}");
                await client.RegisterAsync(password, BackupKeys.NewKey(), replaceExisting: true, cancellationToken: cancellationToken);
                clients.Add((client, password));
            }

            var writeLatencies = await MeasureSingleWritesAsync(NewClient(channels[0], tenantKey, tenant, $"bench-{runId}-writer"), writes, cancellationToken);
            if (warmupSeconds > 0)
            {
                await MeasureRecoveriesAsync(clients[..concurrency], TimeSpan.FromSeconds(warmupSeconds), cancellationToken);
            }

            var cpuBefore = pids.Sum(ProcessCpuSeconds);
            var (recoveries, elapsed, latencies) = await MeasureRecoveriesAsync(clients[..concurrency], TimeSpan.FromSeconds(seconds), cancellationToken);
            var cpuSeconds = pids.Sum(ProcessCpuSeconds) - cpuBefore;
            var halfRate = recoveries / elapsed.TotalSeconds / 2;
            var paced = await MeasurePacedRecoveriesAsync(clients, halfRate, TimeSpan.FromSeconds(seconds), cancellationToken);

            Console.WriteLine($"hsmvault bench: {label} ({string.Join(", ", servers)})");
            Console.WriteLine($"  machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}");
            Console.WriteLine($"  recoveries: {recoveries} in {elapsed.TotalSeconds:F1} s with {concurrency} concurrent clients = {recoveries / elapsed.TotalSeconds:F1} recoveries/s (after a {warmupSeconds} s warm-up)");
            Console.WriteLine($"  recovery latency: p50 {Percentile(latencies, 0.50):F2} ms, p99 {Percentile(latencies, 0.99):F2} ms");
            Console.WriteLine($"  at half that throughput ({halfRate:F1} recoveries/s offered at a fixed rate, {paced.Count} recoveries): p50 {Percentile(paced, 0.50):F2} ms, p99 {Percentile(paced, 0.99):F2} ms");
            Console.WriteLine($"  single committed write (DeleteRecord, 1 client, {writes} in a row): p50 {Percentile(writeLatencies, 0.50):F2} ms, p99 {Percentile(writeLatencies, 0.99):F2} ms");
            Console.WriteLine("  (a recovery is StartRecovery + FinishRecovery: two round trips, two committed writes, token HMAC/unseal; client KSF: identity)");
            if (pids.Length > 0 && recoveries > 0)
            {
                var cpuPerRecovery = cpuSeconds * 1000 / recoveries;
                var ke2 = MeasureKe2Milliseconds();
                Console.WriteLine($"  daemon CPU per recovery ({pids.Length} member process{(pids.Length == 1 ? "" : "es")} together, /proc utime+stime): {cpuPerRecovery:F2} ms");
                Console.WriteLine($"  KE2 in-process, same run ({Ke2Iterations} iterations, software HMAC for the OPRF seed): {ke2 * 1000:F0} µs; CPU per recovery = {cpuPerRecovery / ke2:F1} × KE2 ({Environment.ProcessorCount} cores)");
                var (calls, callCpuSeconds) = await MeasureEmptyCallsAsync(channels, concurrency, pids, cancellationToken);
                var cpuPerCall = callCpuSeconds * 1000 / calls;
                Console.WriteLine($"  floor, same run: one GetFleetInfo call (no token, no write, no Raft; {calls} calls, {concurrency} at a time) costs the daemons {cpuPerCall * 1000:F0} µs of CPU = {cpuPerCall / ke2:F2} × KE2; a recovery makes two calls");
                if (tokenConfig is not null)
                {
                    var token = MeasureTokenWork(TokenCommands.ReadTokenOptions(tokenConfig));
                    Console.WriteLine($"  token work of one recovery, same run ({TokenIterations} in a row, in this process, on the token of {tokenConfig}): {token.Total * 1000:F0} µs = {token.Total / ke2:F1} × KE2 "
                        + $"(unseal {token.Unseal * 1000:F0} µs, OPRF seed expansion {token.OprfExpansion * 1000:F0} µs, two command signatures of {token.Signature * 1000:F0} µs)");
                    Console.WriteLine($"  daemon CPU per recovery without the token's work (which a hardware token does on its own processor): {cpuPerRecovery - token.Total:F2} ms = {(cpuPerRecovery - token.Total) / ke2:F1} × KE2");
                }
            }
            return 0;
        }
        finally
        {
            foreach (var channel in channels)
            {
                channel.Dispose();
            }
        }
    }

    private static VaultClient NewClient(GrpcChannel channel, ECDsa tenantKey, string tenant, string user)
    {
        VaultClient? client = null;
        string? jwt = null;
        client = new VaultClient(channel.CreateCallInvoker(), async cancellationToken =>
            jwt ??= DevelopmentTokens.Mint(tenantKey, tenant, user, (await client!.GetFleetInfoAsync(cancellationToken)).FleetId, TimeSpan.FromHours(1)),
            new IdentityKsf());
        return client;
    }

    /// <summary>
    /// The daemons' CPU per gRPC call that does nothing (GetFleetInfo: no authentication, no token, no Raft), as many at
    /// a time as the recoveries ran: what the transport alone costs, against which the CPU per recovery can be read.
    /// </summary>
    private static async Task<(long Calls, double CpuSeconds)> MeasureEmptyCallsAsync(
        List<GrpcChannel> channels, int concurrency, int[] pids, CancellationToken cancellationToken)
    {
        var callers = Enumerable.Range(0, concurrency).Select(i => new HsmVault.Protocol.V1.Vault.VaultClient(channels[i % channels.Count])).ToList();
        foreach (var caller in callers)
        {
            await caller.GetFleetInfoAsync(new HsmVault.Protocol.V1.GetFleetInfoRequest(), cancellationToken: cancellationToken);
        }

        long calls = 0;
        var cpuBefore = pids.Sum(ProcessCpuSeconds);
        var deadline = Stopwatch.GetTimestamp() + 3 * Stopwatch.Frequency;
        await Task.WhenAll(callers.Select(async caller =>
        {
            while (Stopwatch.GetTimestamp() < deadline && !cancellationToken.IsCancellationRequested)
            {
                await caller.GetFleetInfoAsync(new HsmVault.Protocol.V1.GetFleetInfoRequest(), cancellationToken: cancellationToken);
                Interlocked.Increment(ref calls);
            }
        }));
        return (calls, pids.Sum(ProcessCpuSeconds) - cpuBefore);
    }

    private static async Task<List<double>> MeasureSingleWritesAsync(VaultClient client, int count, CancellationToken cancellationToken)
    {
        var password = Encoding.UTF8.GetBytes("bench writer");
        var key = BackupKeys.NewKey();
        await client.RegisterAsync(password, key, replaceExisting: true, cancellationToken: cancellationToken);
        var latencies = new List<double>(count);
        for (var i = 0; i < count; i++)
        {
            // A delete is one committed write and nothing else: no token work, no read barrier.
            var started = Stopwatch.GetTimestamp();
            await client.DeleteAsync(cancellationToken);
            latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            await client.RegisterAsync(password, key, cancellationToken: cancellationToken);
        }

        return latencies;
    }

    private static async Task<(long Count, TimeSpan Elapsed, List<double> Latencies)> MeasureRecoveriesAsync(
        List<(VaultClient Client, byte[] Password)> clients, TimeSpan duration, CancellationToken cancellationToken)
    {
        var latencies = new List<double>[clients.Count];
        var started = Stopwatch.GetTimestamp();
        var deadline = started + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        await Task.WhenAll(clients.Select(async (c, i) =>
        {
            var mine = latencies[i] = [];
            while (Stopwatch.GetTimestamp() < deadline && !cancellationToken.IsCancellationRequested)
            {
                var begin = Stopwatch.GetTimestamp();
                var result = await c.Client.RecoverAsync(c.Password, cancellationToken);
                if (result.Status != RecoveryStatus.Recovered)
                {
                    throw new InvalidOperationException($"bench recovery failed: {result.Status}");
                }

                CryptographicOperations.ZeroMemory(result.BackupKey);
                mine.Add(Stopwatch.GetElapsedTime(begin).TotalMilliseconds);
            }
        }));
        var all = latencies.SelectMany(l => l).ToList();
        return (all.Count, Stopwatch.GetElapsedTime(started), all);
    }

    /// <summary>
    /// Recoveries started at <paramref name="rate"/> per second for <paramref name="duration"/> (open loop), each
    /// by a free client; latency counts from when a recovery was due, not from when it could start.
    /// </summary>
    private static async Task<List<double>> MeasurePacedRecoveriesAsync(
        List<(VaultClient Client, byte[] Password)> clients, double rate, TimeSpan duration, CancellationToken cancellationToken)
    {
        var free = System.Threading.Channels.Channel.CreateUnbounded<(VaultClient Client, byte[] Password)>();
        foreach (var client in clients)
        {
            free.Writer.TryWrite(client);
        }

        var latencies = new System.Collections.Concurrent.ConcurrentBag<double>();
        var running = new List<Task>();
        var interval = Stopwatch.Frequency / Math.Max(rate, 0.1);
        var started = Stopwatch.GetTimestamp();
        var end = started + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        for (long n = 0; !cancellationToken.IsCancellationRequested; n++)
        {
            var due = started + (long)(n * interval);
            if (due >= end)
            {
                break;
            }

            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, cancellationToken);
            }

            var c = await free.Reader.ReadAsync(cancellationToken);
            running.Add(Task.Run(async () =>
            {
                var result = await c.Client.RecoverAsync(c.Password, cancellationToken);
                latencies.Add(Stopwatch.GetElapsedTime(due).TotalMilliseconds);
                free.Writer.TryWrite(c);
                if (result.Status != RecoveryStatus.Recovered)
                {
                    throw new InvalidOperationException($"bench recovery failed: {result.Status}");
                }

                CryptographicOperations.ZeroMemory(result.BackupKey);
            }, cancellationToken));
        }

        await Task.WhenAll(running);
        return [.. latencies];
    }

    private const int Ke2Iterations = 2000;

    private const int TokenIterations = 500;

    /// <summary>
    /// What the token operations one recovery makes cost, in this process, on the token <paramref name="options"/>
    /// name (a running member's own: the operations change nothing in it), after a warm-up. The inputs have the sizes
    /// of a recovery's: a sealed record of about 512 bytes, a credential identifier, signed commands of about 160 bytes.
    /// </summary>
    private static TokenWork MeasureTokenWork(TokenOptions options)
    {
        using var token = Pkcs11VaultToken.Open(options);
        var associatedData = "hsmvault bench: token work"u8.ToArray();
        var sealedRecord = token.Seal(RandomNumberGenerator.GetBytes(512), associatedData);
        var info = RandomNumberGenerator.GetBytes(40);
        var command = RandomNumberGenerator.GetBytes(160);
        var oprfKeySeed = new byte[32];
        long unseal = 0, oprf = 0, sign = 0;
        for (var i = 0; i < TokenIterations * 11 / 10; i++)
        {
            if (i == TokenIterations / 10)
            {
                // The first tenth warms up.
                unseal = oprf = sign = 0;
            }

            var started = Stopwatch.GetTimestamp();
            CryptographicOperations.ZeroMemory(token.Unseal(sealedRecord, associatedData));
            var unsealed = Stopwatch.GetTimestamp();
            token.ExpandOprfSeed(info, oprfKeySeed);
            var expanded = Stopwatch.GetTimestamp();
            token.SignAsMember(command);
            token.SignAsMember(command);
            var signed = Stopwatch.GetTimestamp();
            unseal += unsealed - started;
            oprf += expanded - unsealed;
            sign += signed - expanded;
        }

        CryptographicOperations.ZeroMemory(oprfKeySeed);
        double Milliseconds(long ticks) => ticks * 1000.0 / Stopwatch.Frequency / TokenIterations;
        return new TokenWork(Milliseconds(unseal), Milliseconds(oprf), Milliseconds(sign) / 2);
    }

    /// <summary>What one recovery's token operations cost, in milliseconds: one unseal, one OPRF seed expansion, two signatures.</summary>
    private sealed record TokenWork(double Unseal, double OprfExpansion, double Signature)
    {
        public double Total => Unseal + OprfExpansion + (2 * Signature);
    }

    /// <summary>CPU seconds (user + system) a process has used so far, from <c>/proc/PID/stat</c>.</summary>
    private static double ProcessCpuSeconds(int pid)
    {
        // Fields 14 and 15 (utime, stime) in clock ticks; the command name (field 2) may hold spaces, so count
        // from the closing parenthesis. Linux's USER_HZ is 100 on every architecture .NET runs on.
        const double ticksPerSecond = 100;
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        return (long.Parse(fields[11], inv) + long.Parse(fields[12], inv)) / ticksPerSecond;
    }

    /// <summary>Milliseconds per <see cref="OpaqueServer.GenerateKe2"/>, in this process, after a warm-up.</summary>
    private static double MeasureKe2Milliseconds()
    {
        var configuration = new OpaqueConfiguration("HsmVault-v1"u8, new IdentityKsf());
        using var keyPair = ServerKeyPair.Generate();
        var server = new OpaqueServer(configuration, new SoftwareOprfSeed(RandomNumberGenerator.GetBytes(64)), keyPair);
        var client = new OpaqueClient(configuration);
        var password = "bench password"u8;
        var credential = "bench-ke2"u8.ToArray();
        var registration = client.CreateRegistrationRequest(password);
        byte[] record;
        using (registration.State)
        {
            record = client.FinalizeRegistrationRequest(registration.State, server.CreateRegistrationResponse(registration.RegistrationRequest, credential)).RegistrationRecord;
        }

        var login = client.GenerateKe1(password);
        using (login.State)
        {
            for (var i = 0; i < Ke2Iterations / 10; i++)
            {
                server.GenerateKe2(login.Ke1, credential, record).State.Dispose();
            }

            var started = Stopwatch.GetTimestamp();
            for (var i = 0; i < Ke2Iterations; i++)
            {
                server.GenerateKe2(login.Ke1, credential, record).State.Dispose();
            }

            return Stopwatch.GetElapsedTime(started).TotalMilliseconds / Ke2Iterations;
        }
    }

    /// <summary>The token's HMAC-SHA512 expansion of oprf_seed (RFC 9807 section 5.3), in software, for the micro-benchmark only.</summary>
    private sealed class SoftwareOprfSeed(byte[] seed) : IOprfSeedExpander
    {
        public void ExpandOprfSeed(ReadOnlySpan<byte> info, Span<byte> destination)
        {
            Span<byte> input = stackalloc byte[info.Length + 1];
            info.CopyTo(input);
            input[^1] = 1;
            Span<byte> mac = stackalloc byte[HMACSHA512.HashSizeInBytes];
            HMACSHA512.HashData(seed, input, mac);
            mac[..destination.Length].CopyTo(destination);
            CryptographicOperations.ZeroMemory(mac);
        }
    }

    private static double Percentile(List<double> values, double fraction)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(fraction * sorted.Count) - 1)];
    }
}
