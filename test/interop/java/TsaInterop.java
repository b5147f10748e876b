// BouncyCastle side of the TSA interop test (test/interop/tsa-peers.test.ts). One JVM per batch:
// one command per line on stdin, one result line per command.
//   token <reply.tsr> <data-file> <tsa.pem> <issuing.pem> <root.pem>
//     -> ok alg=<sigAlgOid> digest=<digestOid> policy=<oid> serial=<hex> imprintMatches=<bool> pkix=valid|invalid:<msg>
//        TimeStampToken.validate (signature, ESS signing-certificate-v2 binding, critical
//        timeStamping EKU, certificate valid at genTime) with a BC-provider SignerInformationVerifier,
//        then the imprint against the digest of <data-file> computed with the token's hash
//        algorithm, then PKIX (no revocation) of tsa → issuing → root at genTime.
//     -> fail <message>   when validate throws (bad signature, wrong binding, …)
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.security.Security;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.Collections;
import org.bouncycastle.cms.SignerInformationVerifier;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.tsp.TimeStampResponse;
import org.bouncycastle.tsp.TimeStampToken;
import org.bouncycastle.util.encoders.Hex;

public class TsaInterop {
  static X509Certificate cert(CertificateFactory cf, String path) throws Exception {
    return (X509Certificate) cf.generateCertificate(new ByteArrayInputStream(Files.readAllBytes(Paths.get(path))));
  }

  static String hashName(String oid) {
    switch (oid) {
      case "1.2.156.10197.1.401": return "SM3";
      case "2.16.840.1.101.3.4.2.1": return "SHA-256";
      case "2.16.840.1.101.3.4.2.2": return "SHA-384";
      case "2.16.840.1.101.3.4.2.3": return "SHA-512";
      default: return oid;
    }
  }

  public static void main(String[] args) throws Exception {
    Security.addProvider(new BouncyCastleProvider());
    CertificateFactory cf = CertificateFactory.getInstance("X.509", "BC");
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line; (line = in.readLine()) != null; ) {
      if (line.isBlank()) continue;
      String[] a = line.trim().split("\\s+");
      try {
        TimeStampResponse resp = new TimeStampResponse(Files.readAllBytes(Paths.get(a[1])));
        TimeStampToken token = resp.getTimeStampToken();
        if (token == null) { System.out.println("fail no token, status " + resp.getStatus()); continue; }
        X509Certificate tsa = cert(cf, a[3]);
        X509Certificate issuing = cert(cf, a[4]);
        X509Certificate root = cert(cf, a[5]);
        // BC 1.72's DefaultCMSSignatureAlgorithmNameGenerator has no name for the GM/T 0010
        // SignerInfo signature OID SM2-1 (1.2.156.10197.1.301.1, STANDARDS.md §3) and fails with
        // "Unknown signature type SM3WITH1.2.156.10197.1.301.1"; the name generator below tells
        // it that SM3 + SM2-1 is SM3withSM2 (BC's default ID 1234567812345678). Everything else —
        // signature check, ESS binding, EKU — is BC's own TimeStampToken.validate.
        SignerInformationVerifier stock = new JcaSimpleSignerInfoVerifierBuilder().setProvider("BC").build(tsa);
        org.bouncycastle.cms.DefaultCMSSignatureAlgorithmNameGenerator names = new org.bouncycastle.cms.DefaultCMSSignatureAlgorithmNameGenerator();
        org.bouncycastle.cms.CMSSignatureAlgorithmNameGenerator gm = (digestAlg, encAlg) ->
            "1.2.156.10197.1.301.1".equals(encAlg.getAlgorithm().getId()) ? "SM3WITHSM2" : names.getSignatureName(digestAlg, encAlg);
        SignerInformationVerifier v = new SignerInformationVerifier(gm, new org.bouncycastle.operator.DefaultSignatureAlgorithmIdentifierFinder(),
            new org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder().setProvider("BC").build(tsa),
            new org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder().setProvider("BC").build());
        if (stock == null) throw new IllegalStateException("no verifier");
        try {
          token.validate(v);
        } catch (Exception e) {
          System.out.println("fail " + e.getClass().getSimpleName() + ": " + String.valueOf(e.getMessage()).replace('\n', ' '));
          continue;
        }
        String hashOid = token.getTimeStampInfo().getMessageImprintAlgOID().getId();
        byte[] data = Files.readAllBytes(Paths.get(a[2]));
        byte[] expected = MessageDigest.getInstance(hashName(hashOid), "BC").digest(data);
        boolean imprint = Arrays.equals(expected, token.getTimeStampInfo().getMessageImprintDigest());
        String pkix;
        try {
          CertPath path = cf.generateCertPath(Arrays.asList(tsa, issuing));
          PKIXParameters p = new PKIXParameters(Collections.singleton(new TrustAnchor(root, null)));
          p.setRevocationEnabled(false);
          p.setDate(token.getTimeStampInfo().getGenTime());
          CertPathValidator.getInstance("PKIX", "BC").validate(path, p);
          pkix = "valid";
        } catch (Exception e) {
          pkix = "invalid:" + String.valueOf(e.getMessage()).replace(' ', '_');
        }
        org.bouncycastle.cms.SignerInformation si = token.toCMSSignedData().getSignerInfos().getSigners().iterator().next();
        System.out.println("ok alg=" + si.getEncryptionAlgOID()
            + " digest=" + si.getDigestAlgOID()
            + " policy=" + token.getTimeStampInfo().getPolicy().getId()
            + " serial=" + token.getTimeStampInfo().getSerialNumber().toString(16)
            + " imprintMatches=" + imprint + " pkix=" + pkix);
      } catch (Exception e) {
        System.out.println("error " + e.getClass().getSimpleName() + ": " + String.valueOf(e.getMessage()).replace('\n', ' '));
      }
    }
  }
}
