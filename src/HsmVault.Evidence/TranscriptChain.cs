using HsmVault.Hsm;

namespace HsmVault.Evidence;

/// <summary>
/// What a transcript proves about how the fleet keys reached each token, counting only steps
/// whose signature verifies: which member generated them (the origin), which member's keys were
/// unwrapped from a matching wrap on the origin, and where the origin locked its keys.
/// </summary>
internal sealed class TranscriptChain
{
    private readonly HashSet<(int Member, string Label)> _unwrapped = [];
    private readonly Dictionary<string, ulong> _locks = new(StringComparer.Ordinal);

    private TranscriptChain()
    {
    }

    /// <summary>The member whose token generated the fleet keys; null when the transcript does not say.</summary>
    public int? Origin { get; private set; }

    /// <summary>Everything wrong with the chain.</summary>
    public List<string> Failures { get; } = [];

    /// <summary>The chain in words, step by step.</summary>
    public List<string> Summary { get; } = [];

    /// <summary>Whether a verified wrap on the origin and unwrap on <paramref name="member"/> brought <paramref name="label"/> there.</summary>
    public bool IsUnwrapped(int member, string label) => _unwrapped.Contains((member, label));

    /// <summary>The verified lock step after which the origin's <paramref name="label"/> was no longer extractable; null if none.</summary>
    public ulong? LockStepOf(string label) => _locks.TryGetValue(label, out var step) ? step : null;

    public static TranscriptChain Analyse(EvidenceBody body)
    {
        var chain = new TranscriptChain();
        var steps = new List<CeremonyStep>();
        foreach (var (step, signature) in body.Transcript.Select(s => (s.Step, s.Signature)))
        {
            if (step.Actor >= 0 && step.Actor < body.Members.Count && step.Fleet == body.Fleet && step.Epoch == body.Epoch
                && signature.IsBy(body.Members[step.Actor].IdentityKey, step.SignedBytes()))
            {
                steps.Add(step);
            }
            else
            {
                chain.Failures.Add($"step {step.Sequence} is left out of the chain: its signature does not verify (check 'ceremony step signatures')");
            }
        }

        chain.Follow(body, steps);
        return chain;
    }

    private static IEnumerable<string> FleetLabels(MemberEvidence member) =>
        member.Keys.Where(k => k.Role != VaultKeyRole.MemberIdentityKey).Select(k => k.Label);

    private void Follow(EvidenceBody body, List<CeremonyStep> steps)
    {
        var generates = steps.Where(s => s.Action == CeremonyAction.Generate).ToList();
        if (generates.Count != 1)
        {
            Failures.Add($"the transcript has {generates.Count} verified generate steps; exactly one member generates the fleet keys");
            return;
        }

        var generate = generates[0];
        Origin = generate.Actor;
        var origin = body.Members[generate.Actor];
        var originLabels = FleetLabels(origin).ToHashSet(StringComparer.Ordinal);
        if (!originLabels.SetEquals(generate.Keys.Select(k => k.Label)))
        {
            Failures.Add($"step {generate.Sequence} generated {string.Join(", ", generate.Keys.Select(k => k.Label))}, not {origin.Name}'s fleet keys {string.Join(", ", originLabels)}");
        }

        Summary.Add($"step {generate.Sequence}: {origin.Name} generated {string.Join(", ", generate.Keys.Select(k => k.Label))}");
        var pairedSteps = new HashSet<ulong>();
        foreach (var member in body.Members.Where(m => m.Index != generate.Actor))
        {
            FollowCopy(generate, origin, member, steps, pairedSteps);
        }

        foreach (var stray in steps.Where(s => s.Action is CeremonyAction.Wrap or CeremonyAction.Unwrap && !pairedSteps.Contains(s.Sequence)))
        {
            Failures.Add($"step {stray.Sequence} ({CeremonyStep.ActionName(stray.Action)} on member {stray.Actor}) is not part of a copy from the origin to another member");
        }

        FollowLock(body, origin, steps, pairedSteps);
    }

    private void FollowCopy(CeremonyStep generate, MemberEvidence origin, MemberEvidence member, List<CeremonyStep> steps, HashSet<ulong> paired)
    {
        var wraps = steps.Where(s => s.Action == CeremonyAction.Wrap && s.Actor == origin.Index && s.Peer == member.Index).ToList();
        var unwraps = steps.Where(s => s.Action == CeremonyAction.Unwrap && s.Actor == member.Index && s.Peer == origin.Index).ToList();
        if (wraps.Count != 1 || unwraps.Count != 1)
        {
            Failures.Add($"{member.Name}: the transcript has {wraps.Count} wraps for it on the origin and {unwraps.Count} unwraps on it; exactly one of each is expected");
            return;
        }

        var (wrap, unwrap) = (wraps[0], unwraps[0]);
        paired.Add(wrap.Sequence);
        paired.Add(unwrap.Sequence);
        var problems = new List<string>();
        if (!(generate.Sequence < wrap.Sequence && wrap.Sequence < unwrap.Sequence))
        {
            problems.Add("the steps are out of order (generate, then wrap, then unwrap)");
        }

        if (!IsPoint(wrap.ActorEphemeralKey) || !IsPoint(wrap.PeerEphemeralKey)
            || !wrap.ActorEphemeralKey!.AsSpan().SequenceEqual(unwrap.PeerEphemeralKey)
            || !wrap.PeerEphemeralKey!.AsSpan().SequenceEqual(unwrap.ActorEphemeralKey)
            || wrap.ActorEphemeralKey.AsSpan().SequenceEqual(wrap.PeerEphemeralKey))
        {
            problems.Add("the wrap and the unwrap do not name the same two distinct ephemeral P-256 points, so they did not derive one wrapping key between them");
        }

        var sameKeys = wrap.Keys.Count == unwrap.Keys.Count && wrap.Keys.Zip(unwrap.Keys).All(p =>
            p.First.Label == p.Second.Label && p.First.WrappedSha256 is { Length: 32 } a && p.Second.WrappedSha256 is { } b && a.AsSpan().SequenceEqual(b));
        if (!sameKeys)
        {
            problems.Add("the unwrap did not take in exactly the blobs the wrap gave out (labels and SHA-256 of each wrapped blob)");
        }

        var missing = FleetLabels(member).Except(unwrap.Keys.Select(k => k.Label), StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
        {
            problems.Add($"no key was unwrapped for {string.Join(", ", missing)}");
        }

        if (problems.Count > 0)
        {
            Failures.AddRange(problems.Select(p => $"{member.Name}, steps {wrap.Sequence} and {unwrap.Sequence}: {p}"));
            return;
        }

        foreach (var key in unwrap.Keys)
        {
            _unwrapped.Add((member.Index, key.Label));
        }

        Summary.Add($"steps {wrap.Sequence}-{unwrap.Sequence}: {origin.Name} wrapped {wrap.Keys.Count} keys under a key derived by ECDH with {member.Name}, " +
            $"which unwrapped the same blobs (mechanisms 0x{wrap.Mechanism:x} and 0x{unwrap.Mechanism:x})");
    }

    private void FollowLock(EvidenceBody body, MemberEvidence origin, List<CeremonyStep> steps, HashSet<ulong> paired)
    {
        var lastWrap = steps.Where(s => paired.Contains(s.Sequence)).Select(s => s.Sequence).DefaultIfEmpty(0UL).Max();
        foreach (var step in steps.Where(s => s.Action == CeremonyAction.Lock))
        {
            if (step.Actor != origin.Index || step.Sequence < lastWrap)
            {
                Failures.Add($"step {step.Sequence}: a lock must be the origin's, after its last wrap");
                continue;
            }

            foreach (var key in step.Keys)
            {
                _locks.TryAdd(key.Label, step.Sequence);
            }

            Summary.Add($"step {step.Sequence}: {origin.Name} made {string.Join(", ", step.Keys.Select(k => k.Label))} non-extractable");
        }

        if (body.Members.Count > 1)
        {
            var unlocked = FleetLabels(origin).Where(l => !_locks.ContainsKey(l)).ToList();
            if (unlocked.Count > 0)
            {
                Failures.Add($"{origin.Name} never locked {string.Join(", ", unlocked)} after the ceremony");
            }
        }
    }

    private static bool IsPoint(byte[]? point) => point is { Length: 65 } && point[0] == 0x04;
}
