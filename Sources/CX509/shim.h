#pragma once
// The few libcrypto operations the ACME client needs, as plain functions: OpenSSL's stack and
// BIO helpers are macros, which Swift cannot call. Each returns 1 (or a length) on success, 0 or
// -1 on failure; the caller reads the reason with ERR_get_error.
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <time.h>

/// A new P-256 key pair (free it with EVP_PKEY_free).
static inline EVP_PKEY *warren_p256_generate(void) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/// Reads a PEM private key (PKCS#8 or SEC1); NULL when it is not one.
static inline EVP_PKEY *warren_pkey_from_pem(const char *pem, int length) {
    BIO *bio = BIO_new_mem_buf(pem, length);
    if (!bio) return NULL;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return key;
}

/// 1 when the key is an EC key on P-256.
static inline int warren_pkey_is_p256(EVP_PKEY *key) {
    char group[32] = {0};
    size_t length = 0;
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &length) != 1) return 0;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/// The key as PKCS#8 PEM into `out`; returns its length, -1 when it does not fit or fails.
static inline int warren_pkey_to_pem(EVP_PKEY *key, char *out, int capacity) {
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio) return -1;
    int result = -1;
    if (PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
        char *data = NULL;
        long length = BIO_get_mem_data(bio, &data);
        if (length > 0 && length <= capacity) {
            memcpy(out, data, (size_t)length);
            result = (int)length;
        }
    }
    BIO_free(bio);
    return result;
}

/// The uncompressed public point (0x04 || X || Y, 65 bytes) into `out`; 1 on success.
static inline int warren_p256_public_point(EVP_PKEY *key, unsigned char out[65]) {
    size_t length = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, out, 65, &length) != 1) return 0;
    return length == 65 && out[0] == 4;
}

/// ES256 (RFC 7518 3.4): ECDSA P-256 with SHA-256, as the raw R || S (64 bytes) JWS wants.
static inline int warren_es256_sign(EVP_PKEY *key, const unsigned char *message, size_t length, unsigned char out[64]) {
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    if (!context) return 0;
    unsigned char der[80];
    size_t der_length = sizeof der;
    int ok = EVP_DigestSignInit(context, NULL, EVP_sha256(), NULL, key) == 1
        && EVP_DigestSign(context, der, &der_length, message, length) == 1;
    EVP_MD_CTX_free(context);
    if (!ok) return 0;
    const unsigned char *cursor = der;
    ECDSA_SIG *signature = d2i_ECDSA_SIG(NULL, &cursor, (long)der_length);
    if (!signature) return 0;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(signature, &r, &s);
    ok = BN_bn2binpad(r, out, 32) == 32 && BN_bn2binpad(s, out + 32, 32) == 32;
    ECDSA_SIG_free(signature);
    return ok;
}

/// A PKCS#10 request (DER) signed by `key`, for `subject_alt_names` ("DNS:a,DNS:b"), with
/// `common_name` as subject when given (at most 64 characters). Returns the length, -1 on failure.
static inline int warren_csr(EVP_PKEY *key, const char *common_name, const char *subject_alt_names, unsigned char *out, int capacity) {
    X509_REQ *request = X509_REQ_new();
    if (!request) return -1;
    int result = -1;
    STACK_OF(X509_EXTENSION) *extensions = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, (char *)subject_alt_names);
    if (!extensions || !san) goto done;
    sk_X509_EXTENSION_push(extensions, san);
    san = NULL;
    if (X509_REQ_set_version(request, 0) != 1) goto done;
    if (common_name && strlen(common_name) <= 64) {
        X509_NAME *name = X509_REQ_get_subject_name(request);
        if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0) != 1) goto done;
    }
    if (X509_REQ_set_pubkey(request, key) != 1) goto done;
    if (X509_REQ_add_extensions(request, extensions) != 1) goto done;
    if (X509_REQ_sign(request, key, EVP_sha256()) <= 0) goto done;
    {
        int length = i2d_X509_REQ(request, NULL);
        if (length <= 0 || length > capacity) goto done;
        unsigned char *cursor = out;
        result = i2d_X509_REQ(request, &cursor);
    }
done:
    if (san) X509_EXTENSION_free(san);
    if (extensions) sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
    X509_REQ_free(request);
    return result;
}

/// The first certificate of a PEM text: its issuer (RFC 2253 text into `issuer`) and validity
/// (seconds since 1970). 1 on success.
static inline int warren_certificate_summary(const char *pem, int length, char *issuer, int issuer_capacity,
                                             long long *not_before, long long *not_after) {
    BIO *bio = BIO_new_mem_buf(pem, length);
    if (!bio) return 0;
    X509 *certificate = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!certificate) return 0;
    int ok = 0;
    struct tm before, after;
    BIO *text = BIO_new(BIO_s_mem());
    if (text && X509_NAME_print_ex(text, X509_get_issuer_name(certificate), 0, XN_FLAG_RFC2253) >= 0
        && ASN1_TIME_to_tm(X509_get0_notBefore(certificate), &before) == 1
        && ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &after) == 1) {
        char *data = NULL;
        long size = BIO_get_mem_data(text, &data);
        if (size >= 0 && size < issuer_capacity) {
            memcpy(issuer, data, (size_t)size);
            issuer[size] = 0;
            *not_before = (long long)timegm(&before);
            *not_after = (long long)timegm(&after);
            ok = 1;
        }
    }
    if (text) BIO_free(text);
    X509_free(certificate);
    return ok;
}

/// OpenSSL's text for the oldest queued error, into `out` (the queue is cleared).
static inline void warren_x509_last_error(char *out, size_t capacity) {
    unsigned long code = ERR_get_error();
    if (code == 0) {
        snprintf(out, capacity, "no detail from OpenSSL");
    } else {
        ERR_error_string_n(code, out, capacity);
    }
    ERR_clear_error();
}
