using System.Globalization;
using HsmVault.Hsm;

namespace HsmVault.Evidence;

/// <summary>
/// Records a key ceremony as it happens, each step signed at once by the acting member's identity
/// key in its token, and at the end reads every member's token and has every member sign the
/// whole <see cref="DeploymentEvidence"/>.
/// </summary>
/// <remarks>Members are numbered by their position in <c>hsmvault fleet init</c>'s <c>--config</c> list.</remarks>
public sealed class CeremonyRecorder
{
    private readonly string _fleet;
    private readonly ulong _epoch;
    private readonly IReadOnlyList<TokenOptions> _members;
    private readonly List<SignedStep> _steps = [];

    /// <summary>A recorder for <paramref name="fleet"/>'s epoch <paramref name="epoch"/> among <paramref name="members"/>.</summary>
    public CeremonyRecorder(string fleet, ulong epoch, IReadOnlyList<TokenOptions> members)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(fleet);
        if (epoch is 0 or > CanonicalJson.MaxInteger)
        {
            throw new ArgumentOutOfRangeException(nameof(epoch), epoch, $"the epoch must be 1..{CanonicalJson.MaxInteger}");
        }

        _fleet = fleet;
        _epoch = epoch;
        _members = members;
    }

    /// <summary>Member <paramref name="actor"/>'s token generated <paramref name="labels"/>.</summary>
    public void Generated(int actor, IEnumerable<string> labels) =>
        Add(new CeremonyStep(NextSequence, CeremonyAction.Generate, actor, _fleet, _epoch, [.. labels.Select(l => new StepKey(l))]));

    /// <summary>Member <paramref name="source"/> wrapped, and member <paramref name="target"/> unwrapped, what <paramref name="copy"/> says.</summary>
    public void Copied(int source, int target, FleetKeyCopyTranscript copy)
    {
        ArgumentNullException.ThrowIfNull(copy);
        var keys = copy.CopiedKeys.Select((label, i) => new StepKey(label, copy.WrappedKeyDigests[i])).ToList();
        Add(new CeremonyStep(NextSequence, CeremonyAction.Wrap, source, _fleet, _epoch, keys,
            target, copy.SourceEphemeralPublicKey, copy.TargetEphemeralPublicKey, copy.WrapMechanism));
        Add(new CeremonyStep(NextSequence, CeremonyAction.Unwrap, target, _fleet, _epoch, keys,
            source, copy.TargetEphemeralPublicKey, copy.SourceEphemeralPublicKey, copy.UnwrapMechanism));
    }

    /// <summary>Member <paramref name="actor"/>'s token made <paramref name="labels"/> non-extractable.</summary>
    public void Locked(int actor, IEnumerable<string> labels) =>
        Add(new CeremonyStep(NextSequence, CeremonyAction.Lock, actor, _fleet, _epoch, [.. labels.Select(l => new StepKey(l))]));

    /// <summary>Reads every member's token, and has every member sign the document.</summary>
    public DeploymentEvidence Finish(DaemonBuild build, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(build);
        var inspections = _members.Select(DeploymentInspection.Inspect).ToList();
        var members = inspections.Select((inspection, i) => new MemberEvidence(
            i,
            inspection.Token,
            inspection.MemberIdentityKey,
            [.. inspection.Keys.Select(k => new KeyEvidence(k.Label, k.Role, k.Attributes, k.CheckValue))])).ToList();
        var body = new EvidenceBody(
            _fleet,
            _epoch,
            now.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
            build,
            inspections[0].FleetSigningKey,
            members,
            [.. _steps]);
        var signed = DeploymentEvidence.SignedBody(body);
        var signatures = _members.Select((member, i) => new MemberSignature(i, Tagged(DeploymentInspection.SignAsMember(member, signed)))).ToList();
        return new DeploymentEvidence(body, signatures);
    }

    private ulong NextSequence => (ulong)_steps.Count + 1;

    private void Add(CeremonyStep step)
    {
        _steps.Add(new SignedStep(step, Tagged(DeploymentInspection.SignAsMember(_members[step.Actor], step.SignedBytes()))));
    }

    private static TaggedSignature Tagged(MemberIdentitySignature signature) => new(signature.Key.Algorithm, signature.Signature);
}
