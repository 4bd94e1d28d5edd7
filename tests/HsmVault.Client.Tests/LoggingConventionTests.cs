using System.Reflection;
using HsmVault.Vault.Audit;
using Microsoft.Extensions.Logging;

namespace HsmVault.Client.Tests;

/// <summary>
/// The logging convention over every src assembly (README, "Log events"): each event is a
/// <see cref="LoggerMessageAttribute"/> method of a <c>Log</c> class nested in its component,
/// with an explicit id and name that no other event has, and the audit block 5000-5999 holds
/// <see cref="VaultAudit"/>'s events and nothing else.
/// </summary>
public sealed class LoggingConventionTests
{
    private const int AuditBlockStart = 5000;
    private const int AuditBlockEnd = 5999;

    /// <summary>The src assemblies that define log events; the test refuses to pass over fewer.</summary>
    private static readonly string[] AssembliesWithEvents =
        ["HsmVault.Consensus", "HsmVault.Hsm", "HsmVault.Vault", "HsmVault.Server", "HsmVault.Witness"];

    private static readonly IReadOnlyList<(MethodInfo Method, LoggerMessageAttribute Event)> Events = FindEvents();

    [Fact]
    public void EveryEvent_HasAnIdAndAName()
    {
        Assert.All(AssembliesWithEvents, name => Assert.Contains(Events, e => e.Method.Module.Assembly.GetName().Name == name));
        var unnamed = Events.Where(e => e.Event.EventId <= 0 || string.IsNullOrWhiteSpace(e.Event.EventName)).Select(e => Describe(e.Method)).ToList();

        Assert.Empty(unnamed);
    }

    [Fact]
    public void NoTwoEvents_ShareAnIdOrAName()
    {
        var sharedIds = Events.GroupBy(e => e.Event.EventId).Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(e => Describe(e.Method)))}").ToList();
        var sharedNames = Events.GroupBy(e => e.Event.EventName, StringComparer.Ordinal).Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(e => Describe(e.Method)))}").ToList();

        Assert.Empty(sharedIds);
        Assert.Empty(sharedNames);
    }

    [Fact]
    public void EveryEvent_IsInALogClassNestedInItsComponent()
    {
        var elsewhere = Events.Where(e => e.Method.DeclaringType is not { Name: "Log", IsNested: true }).Select(e => Describe(e.Method)).ToList();

        Assert.Empty(elsewhere);
    }

    [Fact]
    public void TheAuditBlock_HoldsTheAuditEventsOnly()
    {
        var inBlock = Events.Where(e => e.Event.EventId is >= AuditBlockStart and <= AuditBlockEnd).ToList();
        var notAudit = inBlock.Where(e => e.Method.DeclaringType?.DeclaringType != typeof(VaultAudit)).Select(e => Describe(e.Method)).ToList();
        var auditOutside = Events.Where(e => e.Method.DeclaringType?.DeclaringType == typeof(VaultAudit) && !inBlock.Contains(e)).Select(e => Describe(e.Method)).ToList();

        Assert.Empty(notAudit);
        Assert.Empty(auditOutside);
        Assert.All(inBlock, e => Assert.StartsWith("Audit", e.Event.EventName, StringComparison.Ordinal));
        Assert.Equal(12, inBlock.Count);
    }

    /// <summary>
    /// Every [LoggerMessage] method of every HsmVault src assembly beside this test (its project
    /// references bring them all), test support excluded.
    /// </summary>
    private static List<(MethodInfo, LoggerMessageAttribute)> FindEvents()
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly;
        return Directory.GetFiles(AppContext.BaseDirectory, "HsmVault.*.dll")
            .Select(Path.GetFileNameWithoutExtension)
            .Where(name => name is not null && !name.EndsWith(".Tests", StringComparison.Ordinal) && name != "HsmVault.Testing")
            .Select(name => Assembly.Load(name!))
            .SelectMany(assembly => assembly.GetTypes())
            .SelectMany(type => type.GetMethods(all))
            .Select(method => (method, method.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(e => e.Item2 is not null)
            .Select(e => (e.method, e.Item2!))
            .ToList();
    }

    private static string Describe(MethodInfo method) => $"{method.DeclaringType?.FullName}.{method.Name}";
}
