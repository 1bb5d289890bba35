spoke_test(test_hub ${CMAKE_CURRENT_LIST_DIR}/test_hub.c LABELS unit TIMEOUT 60)
