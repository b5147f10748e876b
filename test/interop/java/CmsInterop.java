// BouncyCastle side of the CMS SignedData interop test (test/interop/signing-cms-peers.test.ts).
// One JVM per batch: one command per line on stdin, one result line per command.
//   verify <cms.der> <content-file | -> [gm]
//     -> ok signers=<n>   every SignerInformation.verify(JcaSimpleSignerInfoVerifierBuilder, BC)
//                         with the certificate matched by the signer id among the embedded ones
//                         (content-file given: detached signature over that file)
//     -> fail <message>
//     "gm": BC 1.72 has no name for the SM2-1 signature OID 1.2.156.10197.1.301.1 of the
//     GB/T 35275 form; a name generator maps SM3 + SM2-1 to SM3withSM2 (as TsaInterop.java).
//   sign-sm2 <key.pem> <cert.pem> <content-file> <out.der>
//     -> ok   CMSSignedDataGenerator with SM3withSM2 (BC's default ID), attached, DER to out.der
import java.io.BufferedReader;
import java.io.FileReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.PrivateKey;
import java.security.Security;
import java.util.Collection;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cms.CMSProcessableByteArray;
import org.bouncycastle.cms.CMSSignedData;
import org.bouncycastle.cms.CMSSignedDataGenerator;
import org.bouncycastle.cms.DefaultCMSSignatureAlgorithmNameGenerator;
import org.bouncycastle.cms.CMSSignatureAlgorithmNameGenerator;
import org.bouncycastle.cms.SignerInfoGeneratorBuilder;
import org.bouncycastle.cms.SignerInformation;
import org.bouncycastle.cms.SignerInformationVerifier;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.DefaultSignatureAlgorithmIdentifierFinder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.util.Store;

public class CmsInterop {
  static String verify(String[] a) throws Exception {
    byte[] der = Files.readAllBytes(Paths.get(a[1]));
    CMSSignedData sd = "-".equals(a[2]) ? new CMSSignedData(der) : new CMSSignedData(new CMSProcessableByteArray(Files.readAllBytes(Paths.get(a[2]))), der);
    boolean gm = a.length > 3 && "gm".equals(a[3]);
    @SuppressWarnings("unchecked")
    Store<X509CertificateHolder> certs = sd.getCertificates();
    int n = 0;
    for (SignerInformation si : sd.getSignerInfos().getSigners()) {
      @SuppressWarnings("unchecked")
      Collection<X509CertificateHolder> m = certs.getMatches(si.getSID());
      if (m.isEmpty()) return "fail no certificate for the signer";
      X509CertificateHolder cert = m.iterator().next();
      SignerInformationVerifier v;
      if (gm) {
        DefaultCMSSignatureAlgorithmNameGenerator names = new DefaultCMSSignatureAlgorithmNameGenerator();
        CMSSignatureAlgorithmNameGenerator gen = (digestAlg, encAlg) ->
            "1.2.156.10197.1.301.1".equals(encAlg.getAlgorithm().getId()) ? "SM3WITHSM2" : names.getSignatureName(digestAlg, encAlg);
        v = new SignerInformationVerifier(gen, new DefaultSignatureAlgorithmIdentifierFinder(),
            new JcaContentVerifierProviderBuilder().setProvider("BC").build(cert),
            new JcaDigestCalculatorProviderBuilder().setProvider("BC").build());
      } else {
        v = new JcaSimpleSignerInfoVerifierBuilder().setProvider("BC").build(cert);
      }
      if (!si.verify(v)) return "fail signature does not verify";
      n++;
    }
    return n == 0 ? "fail no signers" : "ok signers=" + n;
  }

  static String signSm2(String[] a) throws Exception {
    PrivateKey key;
    try (PEMParser p = new PEMParser(new FileReader(a[1], StandardCharsets.US_ASCII))) {
      key = new JcaPEMKeyConverter().setProvider("BC").getPrivateKey((PrivateKeyInfo) p.readObject());
    }
    X509CertificateHolder cert;
    try (PEMParser p = new PEMParser(new FileReader(a[2], StandardCharsets.US_ASCII))) {
      cert = (X509CertificateHolder) p.readObject();
    }
    ContentSigner cs = new JcaContentSignerBuilder("SM3withSM2").setProvider("BC").build(key);
    CMSSignedDataGenerator g = new CMSSignedDataGenerator();
    g.addSignerInfoGenerator(new SignerInfoGeneratorBuilder(new JcaDigestCalculatorProviderBuilder().setProvider("BC").build()).build(cs, cert));
    g.addCertificate(cert);
    CMSSignedData sd = g.generate(new CMSProcessableByteArray(Files.readAllBytes(Paths.get(a[3]))), true);
    Files.write(Paths.get(a[4]), sd.getEncoded("DER"));
    return "ok";
  }

  public static void main(String[] args) throws Exception {
    Security.addProvider(new BouncyCastleProvider());
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line; (line = in.readLine()) != null; ) {
      if (line.isBlank()) continue;
      String[] a = line.trim().split("\\s+");
      String out;
      try {
        out = switch (a[0]) {
          case "verify" -> verify(a);
          case "sign-sm2" -> signSm2(a);
          default -> "fail unknown command " + a[0];
        };
      } catch (Exception e) {
        out = "fail " + e.getClass().getSimpleName() + ": " + String.valueOf(e.getMessage()).replace('\n', ' ');
      }
      System.out.println(out);
    }
  }
}
