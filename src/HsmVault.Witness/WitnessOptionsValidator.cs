using HsmVault.Crypto.Signatures;
using HsmVault.Transparency;
using HsmVault.Transparency.Notes;
using Microsoft.Extensions.Options;

namespace HsmVault.Witness;

/// <summary>Every rule <see cref="WitnessOptions"/> must meet, each in one place.</summary>
public sealed class WitnessOptionsValidator : IValidateOptions<WitnessOptions>
{
    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, WitnessOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        try
        {
            Checkpoint.ValidateOrigin(options.Origin);
        }
        catch (TransparencyException e)
        {
            failures.Add($"{WitnessOptions.SectionName}:Origin: {e.Message}");
        }

        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            failures.Add($"{WitnessOptions.SectionName}:DataDirectory is empty; set it to the folder of the log's database");
        }

        if (string.IsNullOrWhiteSpace(options.KeyLabel))
        {
            failures.Add($"{WitnessOptions.SectionName}:KeyLabel is empty");
        }

        if (options.Namespaces.Count == 0)
        {
            failures.Add($"{WitnessOptions.SectionName}:Namespaces is empty; list each namespace with its operator keys");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Namespaces.Count; i++)
        {
            var ns = options.Namespaces[i];
            var at = $"{WitnessOptions.SectionName}:Namespaces:{i}";
            try
            {
                WitnessStatement.ValidateNamespace(ns.Name);
            }
            catch (TransparencyException e)
            {
                failures.Add($"{at}:Name '{ns.Name}': {e.Message}");
            }

            if (!seen.Add(ns.Name))
            {
                failures.Add($"{at}:Name '{ns.Name}' is listed twice; list each namespace once, with all its operator keys");
            }

            if (ns.OperatorKeys.Count == 0)
            {
                failures.Add($"{at}:OperatorKeys is empty; a namespace needs the public key of the operator that submits to it");
            }

            for (var k = 0; k < ns.OperatorKeys.Count; k++)
            {
                if (OperatorKeyProblem(ns.OperatorKeys[k]) is { } problem)
                {
                    failures.Add($"{at}:OperatorKeys:{k}: {problem}");
                }
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static string? OperatorKeyProblem(OperatorKeyOptions key)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(key.PublicKey);
        }
        catch (FormatException)
        {
            return "PublicKey is not base64";
        }

        return key.Algorithm switch
        {
            SignatureAlgorithm.Ed25519 when bytes.Length != 32 => $"an Ed25519 PublicKey has 32 bytes, not {bytes.Length}",
            SignatureAlgorithm.EcdsaP256Sha256 when bytes.Length != 65 || bytes[0] != 0x04 =>
                "an ECDSA P-256 PublicKey is the 65-byte uncompressed point 0x04 || X || Y",
            SignatureAlgorithm.Ed25519 or SignatureAlgorithm.EcdsaP256Sha256 => null,
            _ => $"Algorithm {key.Algorithm} is not Ed25519 or EcdsaP256Sha256",
        };
    }
}
