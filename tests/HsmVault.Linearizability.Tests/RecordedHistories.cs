using System.Globalization;
using System.Text.RegularExpressions;
using HsmVault.Testing.Linearizability;

namespace HsmVault.Linearizability.Tests;

/// <summary>
/// Reads histories written one operation a line as "client, key, call, return, input, output"
/// (tab separated, inputs and outputs in their record ToString form, "-" for no answer), the
/// form a fleet test's history is dumped in, so a real history can be replayed here.
/// </summary>
public static partial class RecordedHistories
{
    public static List<Operation<VaultInput, VaultOutput>> Parse(string text) =>
        [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseLine)];

    private static Operation<VaultInput, VaultOutput> ParseLine(string line)
    {
        var fields = line.Split('\t');
        var client = int.Parse(fields[0], CultureInfo.InvariantCulture);
        var call = long.Parse(fields[2], CultureInfo.InvariantCulture);
        var input = ParseInput(fields[4]);
        return fields[5] == "-"
            ? Operation.Pending<VaultInput, VaultOutput>(client, input, call, fields[1])
            : Operation.Completed(client, input, call, ParseOutput(fields[5]), long.Parse(fields[3], CultureInfo.InvariantCulture), fields[1]);
    }

    private static VaultInput ParseInput(string text)
    {
        var (name, args) = Split(text);
        return name switch
        {
            "Register" => new VaultInput.Register(Int(args, "Limit"), Bool(args, "Replace")),
            "StartRecovery" => new VaultInput.StartRecovery(Int(args, "Session")),
            "FinishRecovery" => new VaultInput.FinishRecovery(Bool(args, "CorrectPassword"), Int(args, "Session")),
            "Delete" => new VaultInput.Delete(),
            "Status" => new VaultInput.Status(),
            _ => throw new FormatException($"unknown input {text}"),
        };
    }

    private static VaultOutput ParseOutput(string text)
    {
        var (name, args) = Split(text);
        return name switch
        {
            "Registered" => new VaultOutput.Registered(),
            "AlreadyRegistered" => new VaultOutput.AlreadyRegistered(),
            "Charged" => new VaultOutput.Charged(Int(args, "Remaining")),
            "Destroyed" => new VaultOutput.Destroyed(),
            "NotRegistered" => new VaultOutput.NotRegistered(),
            "Success" => new VaultOutput.Success(),
            "WrongPassword" => new VaultOutput.WrongPassword(Int(args, "Remaining")),
            "SessionInvalid" => new VaultOutput.SessionInvalid(),
            "Deleted" => new VaultOutput.Deleted(),
            "NotFound" => new VaultOutput.NotFound(),
            "Status" => new VaultOutput.Status(Bool(args, "IsRegistered"), Int(args, "Remaining"), Bool(args, "IsDestroyed")),
            _ => throw new FormatException($"unknown output {text}"),
        };
    }

    private static (string Name, Dictionary<string, string> Args) Split(string text)
    {
        var match = RecordText().Match(text);
        if (!match.Success)
        {
            throw new FormatException($"not a record: {text}");
        }

        var args = match.Groups["args"].Value
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(a => a.Split('=', StringSplitOptions.TrimEntries))
            .ToDictionary(a => a[0], a => a[1], StringComparer.Ordinal);
        return (match.Groups["name"].Value, args);
    }

    private static int Int(Dictionary<string, string> args, string name) => int.Parse(args[name], CultureInfo.InvariantCulture);

    private static bool Bool(Dictionary<string, string> args, string name) => bool.Parse(args[name]);

    [GeneratedRegex(@"^(?<name>\w+)\s*(\{(?<args>[^}]*)\})?$")]
    private static partial Regex RecordText();
}
