using HsmVault.Hsm.Internal;
using Net.Pkcs11Interop.Common;
using static HsmVault.Hsm.Tests.TokenTestSupport;

namespace HsmVault.Hsm.Tests;

public class DataObjectTests
{
    [Fact]
    public void ReadDataObject_Absent_ReturnsNull()
    {
        using var token = Env.OpenProvisionedToken();

        Assert.Null(token.ReadDataObject("raft-high-water-mark"));
    }

    [Fact]
    public void WriteDataObject_ThenRead_RoundTrips()
    {
        using var token = Env.OpenProvisionedToken();

        token.WriteDataObject("raft-high-water-mark", [1, 2, 3, 4]);

        Assert.Equal([1, 2, 3, 4], token.ReadDataObject("raft-high-water-mark"));
    }

    [Fact]
    public void WriteDataObject_Twice_OverwritesAndKeepsTwoCopies()
    {
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);

        token.WriteDataObject("raft-high-water-mark", [1, 2, 3, 4]);
        token.WriteDataObject("raft-high-water-mark", [9, 8, 7, 6, 5, 4, 3, 2, 1]);

        Assert.Equal([9, 8, 7, 6, 5, 4, 3, 2, 1], token.ReadDataObject("raft-high-water-mark"));
        using var admin = AdminSession.Open(options);
        Assert.Equal(2, DataObjects.FindAll(admin.Session, "hsmvault-raft-high-water-mark").Count);
    }

    [Fact]
    public void WriteDataObject_DifferentNames_AreSeparate()
    {
        using var token = Env.OpenProvisionedToken();

        token.WriteDataObject("a", [1]);
        token.WriteDataObject("b", [2]);

        Assert.Equal([1], token.ReadDataObject("a"));
        Assert.Equal([2], token.ReadDataObject("b"));
    }

    [Fact]
    public void WriteDataObject_PersistsAcrossReopen()
    {
        var options = Env.CreateProvisionedToken();
        using (var token = Pkcs11VaultToken.Open(options))
        {
            token.WriteDataObject("raft-high-water-mark", [42, 43]);
        }

        using var reopened = Pkcs11VaultToken.Open(options);

        Assert.Equal([42, 43], reopened.ReadDataObject("raft-high-water-mark"));
    }

    [Fact]
    public void WriteDataObject_IsInTheTokenFolderBeforeTheCallReturns()
    {
        // The value must be on disk (in SoftHSM2's object files) when the call returns, not in a
        // cache: every write, whether it creates a copy or rewrites one in place, changes the
        // token folder's files before it returns.
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);
        var before = TokenObjectFiles(options).Count;

        for (byte i = 1; i <= 4; i++)
        {
            var contents = FileHashes(options);
            token.WriteDataObject("raft-high-water-mark", [i]);
            Assert.NotEqual(contents, FileHashes(options));
        }

        Assert.Equal(before + 2, TokenObjectFiles(options).Count);
    }

    [Fact]
    public void WriteDataObject_AfterTheSecond_RewritesInPlace_CreatingAndDestroyingNoObject()
    {
        // Why the mark is cheap: from the third write on, no object file appears or goes (SoftHSM2
        // rewrites one attribute of the older copy), so the token's generation does not change
        // and no other session rescans the token folder.
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);
        token.WriteDataObject("raft-high-water-mark", [1]);
        token.WriteDataObject("raft-high-water-mark", [2]);
        var files = TokenObjectFiles(options);

        for (byte i = 3; i <= 30; i++)
        {
            token.WriteDataObject("raft-high-water-mark", [i]);
        }

        Assert.Equal(files, TokenObjectFiles(options));
        using var reopened = Pkcs11VaultToken.Open(options);
        Assert.Equal([30], reopened.ReadDataObject("raft-high-water-mark"));
    }

    [Fact]
    public void DataObjects_ArePrivateSensitiveCarriersThatCanDoNothing()
    {
        var options = Env.CreateProvisionedToken();
        using (var token = Pkcs11VaultToken.Open(options))
        {
            token.WriteDataObject("raft-high-water-mark", [1]);
            token.WriteDataObject("raft-high-water-mark", [2]);
        }

        using var admin = AdminSession.Open(options);
        var copies = admin.Session.FindByLabel(CKO.CKO_SECRET_KEY, "hsmvault-raft-high-water-mark");
        Assert.Equal(2, copies.Count);
        foreach (var handle in copies)
        {
            var attributes = admin.Session.GetBools(handle, CKA.CKA_TOKEN, CKA.CKA_PRIVATE, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE,
                CKA.CKA_SIGN, CKA.CKA_ENCRYPT, CKA.CKA_DECRYPT, CKA.CKA_WRAP, CKA.CKA_UNWRAP, CKA.CKA_DERIVE);
            Assert.True(attributes[CKA.CKA_TOKEN]);
            Assert.True(attributes[CKA.CKA_PRIVATE]);
            Assert.True(attributes[CKA.CKA_SENSITIVE]);
            Assert.False(attributes[CKA.CKA_EXTRACTABLE]);
            Assert.All([CKA.CKA_SIGN, CKA.CKA_ENCRYPT, CKA.CKA_DECRYPT, CKA.CKA_WRAP, CKA.CKA_UNWRAP, CKA.CKA_DERIVE], a => Assert.False(attributes[a]));
        }
    }

    [Fact]
    public void TornRewrite_ReaderTakesTheOtherCopy_NextWriteRewritesTheTornOne()
    {
        // A crash in the middle of rewriting the older copy: its CKA_ID holds a higher sequence but not the value
        // that goes with it. The checksum shows it; the reader takes the intact copy, the previous value.
        var options = Env.CreateProvisionedToken();
        using (var token = Pkcs11VaultToken.Open(options))
        {
            token.WriteDataObject("mark", [1]);
            token.WriteDataObject("mark", [2]);
        }

        using (var admin = AdminSession.Open(options))
        {
            var older = DataObjects.FindAll(admin.Session, "hsmvault-mark").MinBy(c => c.Sequence);
            var torn = admin.Session.GetBytes(older.Handle, CKA.CKA_ID);
            torn[17 + 7] = 99; // sequence 99
            torn[^1] ^= 0xFF;   // value and checksum do not match
            using var update = new AttributeList().Add(CKA.CKA_ID, torn);
            admin.Session.SetAttributeValue(older.Handle, update.Items);
        }

        using var reopened = Pkcs11VaultToken.Open(options);
        Assert.Equal([2], reopened.ReadDataObject("mark"));

        reopened.WriteDataObject("mark", [3]);

        Assert.Equal([3], reopened.ReadDataObject("mark"));
        using var check = AdminSession.Open(options);
        var copies = DataObjects.FindAll(check.Session, "hsmvault-mark");
        Assert.Equal(2, copies.Count);
        Assert.All(copies, c => Assert.NotNull(c.Value));
    }

    [Fact]
    public void InterruptedWrite_ReaderSeesTheNewerValue_NextWriteCleansUp()
    {
        // A crash between creating the new object and destroying the old leaves both.
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);
        token.WriteDataObject("mark", [1]);
        using (var admin = AdminSession.Open(options))
        {
            PlantDataObjectCopy(admin, "hsmvault-mark", [0, 0, 0, 0, 0, 0, 0, 2, 2]);
        }

        Assert.Equal([2], token.ReadDataObject("mark"));

        token.WriteDataObject("mark", [3]);

        Assert.Equal([3], token.ReadDataObject("mark"));
        token.WriteDataObject("mark", [4]);
        using var check = AdminSession.Open(options);
        Assert.Empty(check.Session.FindByLabel(CKO.CKO_DATA, "hsmvault-mark"));
        Assert.Equal(2, DataObjects.FindAll(check.Session, "hsmvault-mark").Count);
        using var reopened = Pkcs11VaultToken.Open(options);
        Assert.Equal([4], reopened.ReadDataObject("mark"));
    }

    [Fact]
    public void WriteDataObject_ManyTimes_KeepsTwoCopiesWithTheLastValue()
    {
        // After the first write the token is not searched again; the remembered copy must be the one replaced.
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);

        for (byte i = 1; i <= 20; i++)
        {
            token.WriteDataObject("raft-high-water-mark", [i]);
        }

        using var reopened = Pkcs11VaultToken.Open(options);
        Assert.Equal([20], reopened.ReadDataObject("raft-high-water-mark"));
        using var admin = AdminSession.Open(options);
        Assert.Equal(2, DataObjects.FindAll(admin.Session, "hsmvault-raft-high-water-mark").Count);
    }

    [Fact]
    public void WriteDataObject_RememberedObjectDestroyedBehindItsBack_StillWritesTheLatest()
    {
        // Someone else replaced the object (its own copy, a higher sequence): the remembered handle is stale, and the
        // write must neither fail nor leave the other copy winning.
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);
        token.WriteDataObject("mark", [1]);
        token.WriteDataObject("mark", [2]);
        using (var admin = AdminSession.Open(options))
        {
            foreach (var copy in DataObjects.FindAll(admin.Session, "hsmvault-mark"))
            {
                admin.Session.DestroyObject(copy.Handle);
            }

            PlantDataObjectCopy(admin, "hsmvault-mark", [0, 0, 0, 0, 0, 0, 0, 9, 9]);
        }

        token.WriteDataObject("mark", [3]);

        using var reopened = Pkcs11VaultToken.Open(options);
        Assert.Equal([3], reopened.ReadDataObject("mark"));
        using var check = AdminSession.Open(options);
        Assert.True(DataObjects.FindAll(check.Session, "hsmvault-mark").Count <= 2);
    }

    [Fact]
    public void ATokenThatRefusesToRewriteACopy_IsWrittenByCreatingOneAndDestroyingTheOthers()
    {
        // Copies the token will not modify (CKA_MODIFIABLE false: C_SetAttributeValue fails with CKR_ACTION_PROHIBITED)
        // stand for a token that does not let CKA_ID change: the write falls back to a new object, then to one copy.
        var options = Env.CreateProvisionedToken();
        using (var admin = AdminSession.Open(options))
        {
            foreach (var sequence in new byte[] { 5, 6 })
            {
                using var template = new AttributeList()
                    .Add(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY)
                    .Add(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET)
                    .Add(CKA.CKA_TOKEN, true)
                    .Add(CKA.CKA_PRIVATE, true)
                    .Add(CKA.CKA_SENSITIVE, true)
                    .Add(CKA.CKA_MODIFIABLE, false)
                    .Add(CKA.CKA_LABEL, "hsmvault-mark")
                    .Add(CKA.CKA_ID, DataObjects.Rewritable(sequence, [sequence]))
                    .Add(CKA.CKA_VALUE, new byte[32]);
                admin.Session.CreateObject(template.Items);
            }
        }

        using var token = Pkcs11VaultToken.Open(options);
        Assert.Equal([6], token.ReadDataObject("mark"));

        token.WriteDataObject("mark", [7]);
        token.WriteDataObject("mark", [8]);

        using var reopened = Pkcs11VaultToken.Open(options);
        Assert.Equal([8], reopened.ReadDataObject("mark"));
        using var check = AdminSession.Open(options);
        var copy = Assert.Single(DataObjects.FindAll(check.Session, "hsmvault-mark"));
        Assert.Equal(8UL, copy.Sequence);
    }

    [Fact]
    public void ACopyNumberedAtTheLastSequence_IsRefusedWithAClearError_NotWrappedAround()
    {
        // Numbering past it would wrap to 0 and leave the planted value on top for ever.
        var options = Env.CreateProvisionedToken();
        using (var admin = AdminSession.Open(options))
        {
            PlantDataObjectCopy(admin, "hsmvault-mark", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1]);
        }

        using var token = Pkcs11VaultToken.Open(options);
        Assert.Equal([1], token.ReadDataObject("mark"));

        var refused = Assert.Throws<TokenConfigurationException>(() => token.WriteDataObject("mark", [2]));

        Assert.Contains("past which no write can be numbered", refused.Message, StringComparison.Ordinal);
        Assert.Equal([1], token.ReadDataObject("mark"));
    }

    [Fact]
    public void ACrashMidRewrite_EmptiesTheCopyBeingWritten_AndTheReaderTakesThePreviousValue()
    {
        // SoftHSM2 rewrites an object file in place: it truncates the file, then writes it. Emptying the file the last
        // write changed stands for a crash right after the truncation (that write never returned). A file cut later
        // in the write needs another process to read it (this process's SoftHSM2 keeps what it wrote); by hand, cut
        // to 32, 210, 307, 350 and 600 bytes, a new process read the previous value every time.
        var options = Env.CreateProvisionedToken();
        using (var token = Pkcs11VaultToken.Open(options))
        {
            token.WriteDataObject("mark", [1]);
            token.WriteDataObject("mark", [2]);
            var before = FileHashes(options);
            token.WriteDataObject("mark", [3]);
            var rewritten = Assert.Single(FileHashes(options), file => before[file.Key] != file.Value).Key;
            using var stream = new FileStream(Path.Combine(TokenFolder(options), rewritten), FileMode.Open, FileAccess.Write);
            stream.SetLength(0);
        }

        using var reopened = Pkcs11VaultToken.Open(options);
        Assert.Equal([2], reopened.ReadDataObject("mark"));

        reopened.WriteDataObject("mark", [4]);
        reopened.WriteDataObject("mark", [5]);

        Assert.Equal([5], reopened.ReadDataObject("mark"));
        using var again = Pkcs11VaultToken.Open(options);
        Assert.Equal([5], again.ReadDataObject("mark"));
    }

    /// <summary>A copy in the form daemons wrote before the rewritable copies: CKO_DATA whose value is the sequence, then the data.</summary>
    private static void PlantDataObjectCopy(AdminSession admin, string label, byte[] stored)
    {
        using var template = new AttributeList()
            .Add(CKA.CKA_CLASS, CKO.CKO_DATA)
            .Add(CKA.CKA_TOKEN, true)
            .Add(CKA.CKA_PRIVATE, true)
            .Add(CKA.CKA_LABEL, label)
            .Add(CKA.CKA_APPLICATION, "hsmvault")
            .Add(CKA.CKA_VALUE, stored);
        admin.Session.CreateObject(template.Items);
    }

    private static Dictionary<string, string> FileHashes(TokenOptions options)
    {
        var folder = TokenFolder(options);
        return TokenObjectFiles(options).ToDictionary(
            file => file,
            file => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(folder, file)))));
    }

    private static SortedSet<string> TokenObjectFiles(TokenOptions options)
    {
        return new SortedSet<string>(Directory.GetFiles(TokenFolder(options), "*.object").Select(Path.GetFileName)!, StringComparer.Ordinal);
    }

    /// <summary>The folder of this test's token, among those other tests create at the same time (one may not have its token.object yet).</summary>
    private static string TokenFolder(TokenOptions options) => Directory.GetDirectories(Env.TokenDirectory)
        .Single(dir => TokenObjectText(dir)?.Contains(options.TokenLabel!, StringComparison.Ordinal) == true);

    private static string? TokenObjectText(string tokenFolder)
    {
        try
        {
            return File.ReadAllText(Path.Combine(tokenFolder, "token.object"), System.Text.Encoding.Latin1);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }
}
