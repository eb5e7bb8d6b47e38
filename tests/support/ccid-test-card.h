/*
 * ccid-card-test: a card for in-process tests of the usb-ccid reader.
 *
 * Answers: INS 0xCA returns (P1 << 8 | P2) bytes of a counting pattern then
 * 90 00; any other APDU is echoed back followed by 90 00. In hold mode the
 * card keeps answers until the test releases them, so tests can interleave
 * host actions with an APDU in flight.
 */
#ifndef TESTS_CCID_TEST_CARD_H
#define TESTS_CCID_TEST_CARD_H

#include "hw/usb/ccid.h"

#define TEST_CARD_INS_GET_LENGTH 0xca

typedef struct TestCard TestCard;

void test_card_register(void);
TestCard *test_card_find(void);
void test_card_set_hold(TestCard *c, bool hold);
/* Deliver the oldest held answer; false if none was held. */
bool test_card_release_one(TestCard *c);
unsigned test_card_held(TestCard *c);
void test_card_insert(TestCard *c);
void test_card_remove(TestCard *c);
/* Fill out[] with the answer the card gives to apdu; returns its length. */
uint32_t test_card_answer(const uint8_t *apdu, uint32_t len, uint8_t *out, uint32_t out_size);

#endif
