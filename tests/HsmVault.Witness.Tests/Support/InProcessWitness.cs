using Grpc.Net.Client;
using HsmVault.Testing.Daemons;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using WitnessClient = HsmVault.Protocol.V1.Witness.WitnessClient;

namespace HsmVault.Witness.Tests.Support;

/// <summary>The witness host (<see cref="WitnessServer"/>) in this process, on real Kestrel at 127.0.0.1 port 0, with its logs captured.</summary>
public sealed class InProcessWitness : IAsyncDisposable
{
    private readonly InProcessHost _host;
    private readonly GrpcChannel _channel;

    private InProcessWitness(InProcessHost host, LogCapture logs)
    {
        _host = host;
        Address = host.Address;
        Logs = logs;
        _channel = GrpcChannel.ForAddress(Address);
        Client = new WitnessClient(_channel);
    }

    /// <summary>Where it listens.</summary>
    public Uri Address { get; }

    /// <summary>Every event it logged.</summary>
    public LogCapture Logs { get; }

    /// <summary>A client of its API.</summary>
    public WitnessClient Client { get; }

    /// <summary>The log behind the API.</summary>
    public WitnessLog Log => _host.Services.GetRequiredService<WitnessLog>();

    /// <summary>Starts the witness with <paramref name="settings"/>.</summary>
    public static async Task<InProcessWitness> StartAsync(IReadOnlyDictionary<string, string?> settings, LogCapture? logs = null)
    {
        logs ??= new LogCapture();
        var host = await InProcessHost.StartAsync(WitnessServer.CreateBuilder([], configuration => configuration.AddInMemoryCollection(settings)), WitnessServer.Build, logs);
        return new InProcessWitness(host, logs);
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await _host.DisposeAsync();
    }
}
